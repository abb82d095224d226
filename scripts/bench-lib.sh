# shellcheck shell=bash disable=SC2034  # FAILED and REGRESSED are read by the sourcing script
# Shared by scripts/bench and the suite drivers (sourced): medians, the
# noisy mark, and the one function that prints a figure's BENCH line.
#
#   BENCH <name> <value> <unit> vs <peer> <value> <unit> ratio <r>[ REGRESSION][ noisy]
#
# Conventions every driver keeps:
# - A run of OURS that fails its own checks makes the figure FAILED.
# - A run of the PEER that fails its own checks makes the figure INVALID
#   (`vs <peer> INVALID <unit> ratio INVALID`), never a silent n/a; a full
#   run then exits non-zero (a quick run prints it and goes on).
# - A peer that is not installed prints n/a with a comment saying so.
# - An invocation started at a 1-minute load average above 1.5
#   (BENCH_NOISY_LOAD) is noisy: a `# noisy: load average X` line at the
#   start and the word `noisy` on every BENCH line.
# - Compare mode (BENCH_BIN_BEFORE=DIR): the "peer" is our own binaries from
#   DIR, run interleaved with the current ones; the line reads
#   `vs before ...`, a `# <name>: before ... after ... change ...` comment
#   gives the spread, and REGRESSION is appended when the median is more
#   than 5% worse and outside the spread of the before runs.

BENCH_NOISY_LOAD=${BENCH_NOISY_LOAD:-1.5}
# Decided once, at the start of the outermost invocation (exported to the
# drivers it runs): later readings include our own benchmark's load.
if [ -z "${BENCH_START_LOAD:-}" ]; then
    BENCH_START_LOAD=$(cut -d' ' -f1 /proc/loadavg)
    export BENCH_START_LOAD
fi
BENCH_NOISY=$(awk -v l="$BENCH_START_LOAD" -v t="$BENCH_NOISY_LOAD" 'BEGIN { print (l + 0 > t + 0) ? 1 : 0 }')
BENCH_BEFORE=${BENCH_BIN_BEFORE:-}

# prints the `# noisy` line if this invocation is noisy
noisy_banner() {
    [ "$BENCH_NOISY" = 1 ] && echo "# noisy: load average $BENCH_START_LOAD at the start (above $BENCH_NOISY_LOAD): every figure below is marked noisy"
    return 0
}
noisy_word() { [ "$BENCH_NOISY" = 1 ] && printf ' noisy'; return 0; }

# median of the numbers on stdin (one a line)
median() {
    sort -g | awk '{ v[NR] = $1 }
      END { if (NR == 0) { print "nan"; exit }
            if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# "min max" of the numbers on stdin
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR == 0) print "nan nan"; else print lo, hi }'; }

# field KEY from a result line "name value=V unit=U key=value ..."
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n1; }

fmt() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else if (v >= 100 || v <= -100) printf "%.0f\n", v; else printf "%.3g\n", v }'; }

# report NAME ORIENT(higher|lower) UNIT OURS_VALS PEER PEER_VALS PEER_FAILS [FLOOR] [PEER_UNIT]
# OURS_VALS and PEER_VALS: one value a line (the runs that passed their
# checks). PEER_FAILS: how many peer runs failed theirs; -1 when the peer is
# not installed. FLOOR: both medians are raised to it for the ratio (a clock
# resolution). Sets FAILED=1 on a failed figure (and on an invalid one in a
# full run) and REGRESSED=1 on a regression in compare mode.
report() {
    local name=$1 orient=$2 unit=$3 ovals=$4 peer=$5 pvals=$6 pfails=$7 floor=${8:-0} punit=${9:-$3}
    local o p r
    o=$(printf '%s' "$ovals" | median)
    if [ "$o" = nan ]; then
        echo "BENCH $name FAILED (see the comments above)$(noisy_word)"
        FAILED=1
        return 0
    fi
    if [ "$pfails" -gt 0 ]; then
        echo "# $name: INVALID: $pfails $peer run(s) failed their own checks (BENCH_VERBOSE=1 shows each run)"
        echo "BENCH $name $(fmt "$o") $unit vs $peer INVALID $punit ratio INVALID$(noisy_word)"
        [ "${QUICK:-0}" = 1 ] || FAILED=1
        return 0
    fi
    p=$(printf '%s' "$pvals" | median)
    r=$(awk -v o="$o" -v p="$p" -v d="$orient" -v f="$floor" 'BEGIN {
          if (o == "nan" || p == "nan") { print "n/a"; exit }
          if (o + 0 < f) o = f; if (p + 0 < f) p = f;
          if (o + 0 == 0 || p + 0 == 0) { print "n/a"; exit }
          printf "%.2f\n", (d == "higher") ? o / p : p / o }')
    local flag=""
    if [ -n "$BENCH_BEFORE" ] && [ "$peer" = before ] && [ "$p" != nan ]; then
        local lo hi ao ah verdict
        read -r lo hi < <(printf '%s' "$pvals" | spread)
        read -r ao ah < <(printf '%s' "$ovals" | spread)
        verdict=$(awk -v o="$o" -v p="$p" -v lo="$lo" -v hi="$hi" -v d="$orient" 'BEGIN {
              ch = (d == "higher") ? (o - p) / p * 100 : (p - o) / p * 100   # > 0: better
              out = (d == "higher") ? (o < lo) : (o > hi)                    # worse than every before run
              printf "%+.1f%% %s\n", ch, (ch < -5 && out) ? "REGRESSION" : "ok" }')
        echo "# $name: before $(fmt "$p") [$(fmt "$lo")..$(fmt "$hi")] after $(fmt "$o") [$(fmt "$ao")..$(fmt "$ah")] $unit," \
             "change ${verdict% *} (positive: better), runs $(printf '%s' "$ovals" | grep -c .)+$(printf '%s' "$pvals" | grep -c .): ${verdict#* }"
        if [ "${verdict#* }" = REGRESSION ]; then flag=" REGRESSION"; REGRESSED=1; fi
    fi
    echo "BENCH $name $(fmt "$o") $unit vs $peer $(fmt "$p") $punit ratio $r$flag$(noisy_word)"
}
