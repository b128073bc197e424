#!/usr/bin/env bash
# Compiles native/*.cu to PTX for each target architecture into the cuda-backend resources:
#   cuda-backend/src/main/resources/dev/peregrine/cuda/ptx/<name>.sm_<arch>.ptx
# The PTX files are committed, so machines without nvcc build the project unchanged. Each file's
# first line records a SHA-256 of what it was made from: the .cu, every *.cuh here (sorted by
# name, C locale) and this script, concatenated. A file whose hash matches is left alone;
# cuda-backend's PtxFreshnessTest fails when one does not match (git keeps no mtimes, so hashes it is).
#
# Every kernel is also assembled for the real architecture with ptxas, which must report no
# warnings and no register spills. Run by Maven (native/pom.xml, phase generate-resources) or by hand:
#   native/build-ptx.sh            FORCE=1 native/build-ptx.sh   (rebuild even when fresh)
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../cuda-backend/src/main/resources/dev/peregrine/cuda/ptx"
archs=(80 90)
flags=(-std=c++17 -O3 --Werror all-warnings)

if ! command -v nvcc >/dev/null 2>&1; then
    echo "[peregrine-native] nvcc is not on the PATH: keeping the shipped PTX in ${out#"$here/../"}"
    exit 0
fi

source_hash() {
    cat "$1" "$here"/*.cuh "$here/build-ptx.sh" | sha256sum | cut -d' ' -f1
}

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
built=0
for cu in "$here"/*.cu; do
    name=$(basename "$cu" .cu)
    hash=$(source_hash "$cu")
    for arch in "${archs[@]}"; do
        ptx="$out/$name.sm_$arch.ptx"
        if [[ -z "${FORCE:-}" && -f "$ptx" && "$(head -n 1 "$ptx")" == "// peregrine-source-sha256 $hash" ]]; then
            continue
        fi
        nvcc -ptx -arch=compute_$arch "${flags[@]}" -o "$tmp/$name.ptx" "$cu"
        # Assemble for the real chip too: a spill or any ptxas warning fails the build.
        nvcc -cubin -arch=sm_$arch "${flags[@]}" -Xptxas -warn-spills,-Werror \
            -o "$tmp/$name.cubin" "$cu"
        { echo "// peregrine-source-sha256 $hash"; cat "$tmp/$name.ptx"; } > "$ptx"
        echo "[peregrine-native] $name.cu -> ${ptx#"$here/../"}"
        built=$((built + 1))
    done
done
echo "[peregrine-native] PTX up to date ($built file(s) rebuilt with $(nvcc --version | tail -n 2 | head -n 1))"
