# tests/expect.sh: sourced by the harden_*.sh tests. Counts failures in
# $fails instead of stopping, so one run reports every broken case.
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_error PHRASE CMD...: exit 1 within 120 s, one "sae: error:" line holding PHRASE
expect_error() {
    local phrase=$1; shift
    timeout 120 "$@" >out.txt 2>err.txt
    local rc=$?
    local n; n=$(grep -c '^sae: error:' err.txt)
    if [ $rc -ne 1 ] || [ "$n" -ne 1 ] || ! grep -qF -- "$phrase" err.txt; then
        fail "$* -> rc=$rc (want 1 with '$phrase'): $(head -c 600 err.txt)"
    fi
}

# expect_ok CMD...: exit 0 within 120 s
expect_ok() {
    timeout 120 "$@" >out.txt 2>err.txt || fail "$* -> rc=$?: $(head -c 600 err.txt)"
}
