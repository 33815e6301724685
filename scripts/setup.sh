#!/usr/bin/env bash
# Installs the Debian packages sae needs (only those missing) and builds it
# into build/. Safe to run again: it only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config
      libopenblas-openmp-dev   # BLAS (sgemm), OpenMP build: one thread pool with our kernels
      libdnnl-dev              # oneDNN: bf16 encoder product on AVX512-BF16 / AMX CPUs
      libhdf5-dev hdf5-tools   # activation and SAE files; h5diff for the resume tests
      libcjson-dev             # JSON metrics and eval output
      libzip-dev               # reading Gemma Scope params.npz (a zip of .npy arrays)
      libpng-dev               # PNG figures (sae viz)
      libfreetype-dev libfontconfig-dev fonts-noto-cjk  # anti-aliased text, Japanese included
      libcmocka-dev            # unit tests
      ${SAE_EXTRA_PKGS:-})     # e.g. test-only packages, from scripts/test.sh
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
