#!/usr/bin/env bash
# The CUDA backend's checks on the GPU machine, in one call of the device tool (under 8 minutes):
#   scripts/prepare-device.sh                          (here, once: fills .device/)
#   device run, carry [".device"]:  bash scripts/gpu-check.sh
# 1. unpacks the carried Java runtime; 2. runs the cuda-backend tests tagged "gpu" with the JUnit
# console launcher; 3. CudaKernelBench (kernel bandwidth, GEMM, attention, launch cost); 4. creates
# synthetic models with `peregrine synth` and runs `peregrine bench` on them (AUTO picks CUDA);
# 5. prints a short table last. GPU_CHECK_STAGES picks stages, GPU_CHECK_JVM_OPTS adds JVM options
# (e.g. -Dperegrine.cuda.graphs=false). The whole output, the test log, the JUnit XML report and the kernel
# numbers go to $OUT (the device tool brings back up to 8 files). A stage that would run past the
# time budget is skipped and says so; the table is always printed.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
budget=${GPU_CHECK_SECONDS:-450}
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
log() { echo "[gpu-check +$((SECONDS - start))s] $*"; }
left() { echo $((budget - (SECONDS - start))); }
rows=()
stages=${GPU_CHECK_STAGES:-tests kernels models} # any of these, to spend less device time
has() { [[ " $stages " == *" $1 "* ]]; }

runtime=${TMPDIR:-/tmp}/peregrine-gpu-check # unpacked outside the checkout, which stays as carried
rm -rf "$runtime" && mkdir -p "$runtime"
tar -xJf .device/jre.tar.xz -C "$runtime" || { echo "no .device/jre.tar.xz: run scripts/prepare-device.sh and carry .device"; exit 2; }
export JAVA_HOME=$runtime/jre PATH=$runtime/jre/bin:$PATH
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
gpu=${gpu:-no nvidia-smi}
echo "$gpu"
java -version 2>&1 | head -n 1

launcher=$(ls .device/lib/junit-platform-console-standalone-*.jar)
classpath=$(ls .device/lib/*.jar | grep -v junit-platform-console-standalone | tr '\n' ':').device/test-classes
jvm=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Dperegrine.shared.dir="$PWD/.device/shared"
     -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Xmx16g ${GPU_CHECK_JVM_OPTS:-})

log "CUDA backend"
if probe=$(timeout 60 java "${jvm[@]}" -cp "$classpath" dev.peregrine.cuda.CudaKernelBench probe 2>&1); then
    cuda=yes
else
    cuda=no
fi
echo "$probe"
rows+=("cuda|$(grep -v '^WARNING' <<< "$probe" | tail -n 1)")

if has tests; then
log "GPU tests (JUnit, tag gpu)"
timeout "${GPU_TEST_SECONDS:-240}" java "${jvm[@]}" -jar "$launcher" execute --class-path "$classpath" --select-package dev.peregrine.cuda \
    --include-tag gpu --details=tree --disable-banner --disable-ansi-colors --reports-dir "$out/junit" 2>&1 | tee "$out/tests.log"
tests=$(grep -E "tests (successful|failed)|containers (aborted|failed)" "$out/tests.log" | tr -s ' []' ' ' | paste -sd, -)
rows+=("tests|${tests:-no summary (see tests.log)}")
fi

if [[ $cuda == no ]]; then
    rows+=("benchmarks|skipped: CUDA is not usable here")
elif ! has kernels; then
    :
elif (( $(left) > 40 )); then
    log "kernel benchmark"
    timeout 60 java "${jvm[@]}" -cp "$classpath" dev.peregrine.cuda.CudaKernelBench 5 2>&1 | tee "$out/kernels.txt"
    while IFS= read -r line; do rows+=("kernels|$line"); done < <(grep -E "^(decode|prefill|attention|launch)" "$out/kernels.txt")
else
    rows+=("kernels|skipped: $(left) s left")
fi

# A script rather than a shell function: `timeout` runs programs, not functions.
peregrine=$runtime/peregrine
printf '#!/usr/bin/env bash\nexec java %s -cp %q dev.peregrine.cli.Peregrine "$@"\n' "$(printf '%q ' "${jvm[@]}")" "$classpath" > "$peregrine"
chmod +x "$peregrine"
# shape, dtype, concurrency levels to measure (- for none), the issue's acceptance target, more bench options
specs=("smollm2-135m bf16 - decode>=3000"
       "llama3.2-1b bf16 32 decode>=850,c32>=15000,prefill>=30000"
       "llama3.2-1b bf16 32 f16_kv_cache_vs_the_row_above --kv-cache-type f16"
       "llama3.2-1b q8_0 - decode>=60%_of_its_limit")
for spec in "${specs[@]}"; do
    read -r shape dtype concurrency target extra <<< "$spec"
    if [[ $cuda == no ]] || ! has models; then
        break
    fi
    if (( $(left) < 30 )); then
        rows+=("$shape $dtype|skipped: $(left) s left")
        continue
    fi
    model=/tmp/$shape-$dtype.gguf
    log "synth $shape $dtype"
    [[ -f $model ]] || timeout 120 "$peregrine" synth --shape "$shape" --dtype "$dtype" -o "$model" 2>&1 | tail -n 1
    log "bench $shape $dtype"
    options=(-m "$model" -p 512 -n 128 -r 3 --prefill-chunk 512 --json)
    [[ $concurrency == - ]] || options+=(--concurrency "$concurrency")
    if [[ -n $extra ]]; then
        read -r -a more <<< "$extra"
        options+=("${more[@]}")
    fi
    json=$(timeout "$(left)" "$peregrine" bench "${options[@]}" | tail -n 1)
    echo "$json"
    field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<< "$json" | head -n 1; }
    bytes=$(field weight_bytes_per_token)
    limit=$(awk -v b="${bytes:-0}" 'BEGIN { if (b > 0) printf "%.0f", 3.0e12 / b; else print "?" }')
    aggregate=$(sed -n 's/.*"aggregate_tok_s":\([0-9.]*\).*/\1/p' <<< "$json" | tail -n 1)
    rows+=("$shape $dtype${extra:+ $extra}|prefill $(field prefill_tok_s) tok/s, decode $(field decode_tok_s) tok/s (bandwidth limit $limit at 3.0 TB/s), c$concurrency ${aggregate:-n/a} tok/s; target $target")
done

echo
echo "==================== gpu-check: $gpu, $((SECONDS - start)) s ===================="
for row in "${rows[@]}"; do
    printf '%-22s %s\n' "${row%%|*}" "${row#*|}"
done
