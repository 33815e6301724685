# tests/expect.sh: sourced by the shell tests (harden_*.sh, *_cli.sh). Counts
# failures in $fails instead of stopping, so one run reports every broken case.
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_status RC PHRASE CMD...: exit RC (1 runtime, 2 usage) within 120 s,
# with exactly one "sae: error:" line, holding PHRASE
expect_status() {
    local want=$1 phrase=$2; shift 2
    timeout 120 "$@" >out.txt 2>err.txt </dev/null
    local rc=$?
    local n; n=$(grep -c '^sae: error:' err.txt)
    [ "$rc" = "$want" ] || n=-1
    if [ "$n" -ne 1 ] || ! grep -qF -- "$phrase" err.txt; then
        fail "$* -> rc=$rc (want $want with '$phrase'): $(head -c 600 err.txt)"
    fi
}
expect_error() { expect_status 1 "$@"; }   # PHRASE CMD...: a runtime error
expect_usage() { expect_status 2 "$@"; }   # PHRASE CMD...: a usage error

# need_h5py: PY becomes a python3 that imports h5py and numpy, or the test is
# skipped (exit 77)
need_h5py() {
    PY=
    for p in /usr/bin/python3 "$(command -v python3)"; do
        if [ -x "$p" ] && "$p" -c "import h5py, numpy" 2>/dev/null; then PY=$p; return; fi
    done
    echo "SKIP: h5py/numpy not importable (apt-get install python3-h5py to run this test)"
    exit 77
}

# expect_ok CMD...: exit 0 within 120 s
expect_ok() {
    timeout 120 "$@" >out.txt 2>err.txt || fail "$* -> rc=$?: $(head -c 600 err.txt)"
}
