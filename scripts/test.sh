#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: once in the
# optimised build, once under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
# python3-h5py: the interop test checks the schema from h5py's side
SAE_EXTRA_PKGS="python3-h5py" bash scripts/setup.sh
ctest --test-dir build --output-on-failure

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSAE_SANITIZE_ADDRESS=ON -DSAE_SANITIZE_UNDEFINED=ON -DSAE_WERROR=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure

# libFuzzer harnesses (clang, ASan + UBSan), 30 s each; see fuzz/README.md
bash scripts/fuzz.sh 30
