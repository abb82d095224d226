#!/usr/bin/env bash
# The deployment files: compose.yaml is valid for Debian's docker-compose
# (`config -q`, and a broken copy is refused), and deploy/kamaelia.service
# passes `systemd-analyze verify` with no warning and keeps its promises
# (non-root, ProtectSystem=strict, the data directory writable).
set -euo pipefail
: "${KAMAELIA_SOURCE_DIR:?}" "${PKG_WORK_DIR:?}"
src=$KAMAELIA_SOURCE_DIR
work=$PKG_WORK_DIR
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---- compose.yaml
command -v docker-compose > /dev/null || fail "docker-compose is not installed (scripts/install-deps)"
(cd "$src" && docker-compose -f compose.yaml config -q) || fail "docker-compose config -q compose.yaml"
ok "compose.yaml: docker-compose config -q"
services=$(cd "$src" && docker-compose -f compose.yaml config --services | sort | tr '\n' ' ')
[ "$services" = "kamaelia-a kamaelia-b postgres redis " ] || fail "compose services: $services"
ok "compose.yaml: two kamaelia hosts, redis, postgres"
(cd "$src" && docker-compose -f compose.yaml config) > "$work/compose.resolved"
grep -q 'stop_grace_period: 1m0s\|stop_grace_period: 60s' "$work/compose.resolved" || fail "no stop_grace_period"
grep -q 'KAMAELIA_KAMAELIA_STOP_TIMEOUT' "$work/compose.resolved" || fail "no stop timeout for the daemon"
ok "compose.yaml: the stop grace period outlasts the daemon's stop timeout"
# Every KAMAELIA_* variable the compose file sets is one the daemon knows: an
# unknown one stops the daemon at start-up ("unknown environment variable").
bin=${KAMAELIA_BINARY_DIR:+$KAMAELIA_BINARY_DIR/bin/kamaelia}
if [ -x "${bin:-}" ]; then
  mapfile -t vars < <(sed -n "s/^ *\(KAMAELIA_[A-Z0-9_]*\): *[\"']\{0,1\}\([^\"']*\)[\"']\{0,1\} *\$/\1=\2/p" "$work/compose.resolved" | sort -u)
  [ "${#vars[@]}" -ge 5 ] || fail "found only ${#vars[@]} KAMAELIA_ variables in compose.yaml"
  mkdir -p "$work/data"
  # Only greeter runs (on a free loopback port); the rest is parsed and checked.
  env -i PATH="$PATH" "${vars[@]}" KAMAELIA_DATA_DIR="$work/data" \
    "$bin" greeter --bind 127.0.0.1 --port 0 > "$work/env.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    grep -q "listening on" "$work/env.log" && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2> /dev/null || true
  wait "$pid" || true
  grep -q "listening on" "$work/env.log" || fail "greeter did not start with compose.yaml's environment: $(cat "$work/env.log")"
  ok "compose.yaml: the daemon accepts each of its ${#vars[@]} KAMAELIA_ variables"
fi
# The check itself refuses a broken file.
sed 's/^services:/servics:/' "$src/compose.yaml" > "$work/broken.yaml"
if docker-compose -f "$work/broken.yaml" config -q 2> /dev/null; then fail "docker-compose accepted a broken file"; fi
ok "docker-compose refuses a broken copy"

# ---- deploy/kamaelia.service
unit=$src/deploy/kamaelia.service
for line in 'User=kamaelia' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/kamaelia' \
            'Environment=KAMAELIA_DATA_DIR=/var/lib/kamaelia' 'NoNewPrivileges=true'; do
  grep -qx "$line" "$unit" || fail "kamaelia.service has no '$line'"
done
ok "kamaelia.service: non-root, ProtectSystem=strict, the data directory writable"
if command -v systemd-analyze > /dev/null; then
  # verify wants ExecStart to exist: point it at the built binary.
  bin=${KAMAELIA_BINARY_DIR:+$KAMAELIA_BINARY_DIR/bin/kamaelia}
  [ -x "${bin:-}" ] || bin=/bin/true
  sed "s|/usr/local/bin/kamaelia|$bin|g" "$unit" > "$work/kamaelia.service"
  out=$(systemd-analyze verify "$work/kamaelia.service" 2>&1) || fail "systemd-analyze verify: $out"
  # verify exits 0 on a misspelt setting; any line it prints is a finding.
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  sed 's/^ProtectSystem=strict/ProtectSystem=stict/' "$work/kamaelia.service" > "$work/bad.service"
  [ -n "$(systemd-analyze verify "$work/bad.service" 2>&1)" ] || fail "verify did not notice a misspelt value"
  ok "kamaelia.service: systemd-analyze verify"
else
  echo "note: systemd-analyze not available, unit not verified"
fi
echo "packaging deploy: all checks passed"
