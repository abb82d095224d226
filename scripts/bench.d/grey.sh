# shellcheck shell=bash disable=SC2034  # sourced by scripts/bench, which reads FAILED
# The grey suite for scripts/bench (sourced): policy decisions/s of
# `kamaelia policy` against Debian's postgrey (scripts/bench-grey-policy),
# then the SMTP proxy's figures if scripts/bench-grey-proxy exists.
#
#   grey.policy_c1   decisions/s, 1 connection, half never-seen triplets
#                    (deferred) and half known ones (passed)
#   grey.policy_c8   the same on 8 connections
#   grey.policy_c8_sync_full   ours with --sync full (an fsync per commit,
#                    power-loss durable like postgrey's log flush), 8 connections
#   grey.policy_pg_c8   8 connections, the greylist in PostgreSQL: ours with
#                    --store postgresql://... against Debian's sqlgrey
#                    (db_prepare_cache = 1) on the same throwaway PostgreSQL
#                    (synchronous_commit=on), a fresh cluster each run
#
# Server on CPU 0, client (and PostgreSQL) on CPU 1; every decision durable
# before its answer.
suite_grey() {
    local secs=5
    # QUICK: a smoke test; fewer seeded triplets too (postgrey takes ~4 ms each).
    if [ "$QUICK" = 1 ]; then secs=1; export GREY_KNOWN=20; fi
    if [ ! -x "$BIN/bench_policy_client" ] || [ ! -x "$BIN/kamaelia" ]; then
        skip grey.policy "bench_policy_client or kamaelia is not built (make bench)"
    else
        local peer=postgrey
        command -v postgrey >/dev/null || echo "# postgrey is not installed: peer figures are n/a"
        # figure() pins the command to one CPU; the script re-pins server and client itself.
        figure grey.policy_c1 higher "$peer" "$ROOT/scripts/bench-grey-policy ours 1 $secs" \
            "$ROOT/scripts/bench-grey-policy postgrey 1 $secs"
        figure grey.policy_c8 higher "$peer" "$ROOT/scripts/bench-grey-policy ours 8 $secs" \
            "$ROOT/scripts/bench-grey-policy postgrey 8 $secs"
        figure grey.policy_c8_sync_full higher "$peer" "$ROOT/scripts/bench-grey-policy ours-full 8 $secs" \
            "$ROOT/scripts/bench-grey-policy postgrey 8 $secs"
        command -v sqlgrey >/dev/null || echo "# sqlgrey is not installed: grey.policy_pg_c8 is INVALID"
        figure grey.policy_pg_c8 higher sqlgrey "$ROOT/scripts/bench-grey-policy ours-pg 8 $secs" \
            "$ROOT/scripts/bench-grey-policy sqlgrey 8 $secs"
    fi
    if [ -x "$ROOT/scripts/bench-grey-proxy" ] && want grey.proxy_8; then
        "$ROOT/scripts/bench-grey-proxy" || FAILED=1
    fi
}
