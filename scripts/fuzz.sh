#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, AddressSanitizer + UBSan) into
# $B/ and runs each one for a bounded time.
#
#   bash scripts/fuzz.sh                  # every harness, 30 s each (what CI runs)
#   bash scripts/fuzz.sh 3600 fuzz_config # one harness for an hour
#   FUZZ_JOBS=2 bash scripts/fuzz.sh 600  # two harnesses at a time
#   FUZZ_BUILD=build-fuzz-x ...           # another build folder
#
# Each harness starts from its seed corpus in fuzz/corpus/NAME (read only) and
# keeps what it discovers in $B/corpus/NAME, so a longer run picks up
# where the last one stopped. A crash, a leak, a timeout (10 s on one input) or
# a blow-up past 2 GiB is written to $B/crashes/ and fails the script;
# reproduce one with: $B/fuzz/NAME $B/crashes/NAME-crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
B=${FUZZ_BUILD:-build-fuzz}
shift || true
SAE_EXTRA_PKGS="clang libclang-rt-14-dev libomp-dev ${SAE_EXTRA_PKGS:-}" bash scripts/setup.sh >/dev/null
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
      -DSAE_FUZZ=ON -DSAE_SANITIZE_ADDRESS=ON -DSAE_SANITIZE_UNDEFINED=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null
if [ $# -gt 0 ]; then harnesses=("$@"); else
    harnesses=(); for f in fuzz/fuzz_*.c; do harnesses+=("$(basename "$f" .c)"); done
fi
mkdir -p $B/crashes
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
export OMP_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE

run_one() {
    local h=$1
    mkdir -p "$B/corpus/$h" "fuzz/corpus/$h"
    local log="$B/$h.log"
    if $B/fuzz/"$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
           -print_final_stats=1 -artifact_prefix="$B/crashes/$h-" \
           "$B/corpus/$h" "fuzz/corpus/$h" >"$log" 2>&1; then
        local runs cov
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo ?)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo ?)
        printf 'fuzz: %-22s ok   %5ss %9s runs  %5s edges\n' "$h" "$seconds" "$runs" "$cov"
    else
        printf 'fuzz: %-22s FAILED (log: %s)\n' "$h" "$log"
        grep -m3 -E 'ERROR|runtime error|SUMMARY' "$log" | sed 's/^/    /'
        return 1
    fi
}
export -f run_one
export seconds B
printf '%s\n' "${harnesses[@]}" | xargs -P "${FUZZ_JOBS:-1}" -I{} bash -c 'run_one {}'
