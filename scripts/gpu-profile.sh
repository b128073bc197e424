#!/usr/bin/env bash
# Where a decode step's time goes on the GPU machine: `peregrine bench` under Java Flight Recorder.
#   scripts/prepare-device.sh; device run, carry [".device"]:  bash scripts/gpu-profile.sh [SHAPE DTYPE [BENCH OPTIONS...]]
# Writes $OUT/<shape>-<dtype>.jfr; read it here with
#   jfr print --events jdk.ExecutionSample FILE | grep -A3 'stackTrace = \[' | grep -v stackTrace | sort | uniq -c | sort -rn | head
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-smollm2-135m}
dtype=${2:-bf16}
shift $(( $# < 2 ? $# : 2 ))
out=${OUT:-/tmp/gpu-profile}
mkdir -p "$out"
runtime=${TMPDIR:-/tmp}/peregrine-gpu-profile
rm -rf "$runtime" && mkdir -p "$runtime" && tar -xJf .device/jre.tar.xz -C "$runtime"
export PATH=$runtime/jre/bin:$PATH
classpath=$(ls .device/lib/*.jar | grep -v junit-platform-console-standalone | tr '\n' ':')
jvm=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -cp "$classpath")
model=/tmp/$shape-$dtype.gguf
[[ -f $model ]] || java "${jvm[@]}" dev.peregrine.cli.Peregrine synth --shape "$shape" --dtype "$dtype" -o "$model" | tail -n 1
java "${jvm[@]}" -XX:StartFlightRecording=filename="$out/$shape-$dtype.jfr",settings=profile \
    dev.peregrine.cli.Peregrine bench -m "$model" -p 512 -n 256 -r 3 --json "$@" | tail -n 1
