# The net suite for scripts/bench (sourced): `scripts/bench net` runs
# scripts/bench-net, which prints its own BENCH lines (see that script).
suite_net() {
    "$ROOT/scripts/bench-net" || FAILED=1
}
