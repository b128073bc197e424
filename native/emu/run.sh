#!/usr/bin/env bash
# Runs the kernels of native/*.cu on the CPU with the emulator in this directory and compares them
# with float64 references (kernels_test.cpp): their logic is checked on machines without a GPU.
# Needs g++ and the CUDA headers (for cuda_fp16.h); without them it logs a line and does nothing.
#   native/emu/run.sh [weights|elementwise|attention|sampling]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
if ! command -v g++ >/dev/null 2>&1 || [[ ! -f "$cuda_include/cuda_fp16.h" ]]; then
    echo "[peregrine-native] g++ or $cuda_include/cuda_fp16.h missing: kernel emulation tests skipped"
    exit 0
fi
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
[[ "$(uname -m)" == x86_64 ]] || { echo "[peregrine-native] the kernel emulator switches stacks in x86-64 assembly: skipped on $(uname -m)"; exit 0; }
flags=(-std=c++17 -O2 -fno-strict-aliasing -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unknown-pragmas -I"$cuda_include" -I"$here")
objects=()
for cu in "$here"/../*.cu; do
    name=$(basename "$cu" .cu)
    # Dynamic shared memory becomes the emulator's buffer; everything else compiles as it is.
    sed -E 's/extern __shared__ ([A-Za-z_0-9]+) ([A-Za-z_0-9]+)\[\];/\1* \2 = static_cast<\1*>(emu::dynamic_shared());/' \
        "$cu" > "$build/$name.cpp"
    g++ "${flags[@]}" -I"$here/.." -include emu.h -c "$build/$name.cpp" -o "$build/$name.o" &
    objects+=("$build/$name.o")
done
g++ "${flags[@]}" -c "$here/emu.cpp" -o "$build/emu.o" &
g++ "${flags[@]}" -c "$here/kernels_test.cpp" -o "$build/kernels_test.o" &
wait
g++ -o "$build/kernels_test" "${objects[@]}" "$build/emu.o" "$build/kernels_test.o"
"$build/kernels_test" "$@"
