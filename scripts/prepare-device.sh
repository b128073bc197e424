#!/usr/bin/env bash
# Prepares .device/ (ignored by git) for scripts/gpu-check.sh on the GPU machine, which has no Java
# and no Maven repository: a jlink'd Java 25 runtime, the project's jars and their dependencies, the
# JUnit console launcher, the compiled cuda-backend tests and the small shared test models.
#   scripts/prepare-device.sh            (then, through the device tool, with carry [".device"]:
#                                         bash scripts/gpu-check.sh)
# About 45 MB; the runtime is rebuilt only when .device/jre.tar.xz is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
shared=${PEREGRINE_SHARED:-$root/../shared}

# Jars: the command line (peregrine synth/bench) and everything the GPU tests need on their class path.
./mvnw -q -B install -DskipTests -pl examples,cuda-backend -am
./mvnw -q -B package -DskipTests -Pdevice -pl cuda-backend

mkdir -p .device
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device/lib .device/test-classes .device/shared .device/jre
mkdir -p .device/lib .device/shared/models
jar_of() { # the module's main jar (not -sources, -tests, ...)
    ls "$1"/target/peregrine-*-0*.jar "$1"/target/peregrine-*-SNAPSHOT.jar 2>/dev/null | grep -vE -- '-(sources|javadoc|tests)\.jar$' | head -n 1
}
cp cuda-backend/target/device-lib/*.jar .device/lib/
cp "$(jar_of cuda-backend)" "$(jar_of examples)" .device/lib/
cp -n examples/target/lib/*.jar .device/lib/ # the command line's own dependencies (same versions: -n keeps one)
# ONNX Runtime (40 MB, a dependency of the command line) has no part in the GPU checks and would
# not fit the 64 MB a device call carries.
rm -f .device/lib/onnxruntime-*.jar .device/lib/peregrine-onnx-backend-*.jar
cp -r cuda-backend/target/test-classes .device/test-classes
cp "$shared"/models/stories260K.gguf "$shared"/models/tinyllamas-stories-260k-q8_0.gguf \
   "$shared"/models/TinyLLama-v0-Q4_0.gguf .device/shared/models/

# The runtime: the default modules of device-jre.sh plus jdk.management (peregrine bench counts
# allocation), java.xml (the console launcher's XML reports), jdk.zipfs (it scans jars for tests) and
# jdk.jfr (scripts/gpu-profile.sh records the host side with Flight Recorder).
if [[ ! -f .device/jre.tar.xz ]]; then
    MODULES=java.base,jdk.incubator.vector,java.logging,jdk.unsupported,java.management,jdk.management,java.net.http,jdk.httpserver,java.xml,jdk.zipfs,jdk.jfr \
        "$shared/tools/device-jre.sh"
fi
du -sh .device
ls .device/lib
