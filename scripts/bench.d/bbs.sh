# shellcheck shell=bash disable=SC2034  # sourced by scripts/bench, which reads FAILED
# The bbs suite for scripts/bench (sourced): `scripts/bench bbs` runs
# scripts/bench-bbs, which prints its own BENCH lines (see that script).
suite_bbs() {
    "$ROOT/scripts/bench-bbs" || FAILED=1
}
