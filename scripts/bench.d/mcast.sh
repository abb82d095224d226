# The mcast suite for scripts/bench (sourced): `scripts/bench mcast` runs
# scripts/bench-mcast, which prints its own BENCH lines (see that script).
suite_mcast() {
    BENCH_BIN="$BIN" "$ROOT/scripts/bench-mcast" || FAILED=1
}
