#!/usr/bin/env bash
# The container's build and run steps, outside Docker (no engine here):
#  1. the Dockerfile's sanity (stages, user, volume, ports, health check,
#     stop signal, entry point; every COPY source exists; the sources it
#     copies are enough to configure the build);
#  2. scripts/docker-build-stage, reusing this build tree, into a temporary prefix;
#  3. scripts/docker-runtime-stage into a temporary root (and --dry-run);
#  4. the installed daemon: `kamaelia greeter --port 0`, then `kamaelia all`
#     with every server on port 0 from a config file: `kamaelia health`
#     answers, SIGTERM drains and exits 0.
# Environment (set by tests/packaging/CMakeLists.txt): KAMAELIA_BINARY_DIR,
# KAMAELIA_SOURCE_DIR, PKG_WORK_DIR.
set -euo pipefail

: "${KAMAELIA_BINARY_DIR:?}" "${KAMAELIA_SOURCE_DIR:?}" "${PKG_WORK_DIR:?}"
src=$KAMAELIA_SOURCE_DIR
rm -rf "$PKG_WORK_DIR"
mkdir -p "$PKG_WORK_DIR"
work=$(cd "$PKG_WORK_DIR" && pwd)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }

# ---- 1. the Dockerfile ----------------------------------------------------
df=$src/Dockerfile
[ -f "$df" ] || fail "no Dockerfile"
expect_line() { # REGEX WHAT
  grep -Eq "$1" "$df" || fail "Dockerfile: $2 (no line matching $1)"
  ok "Dockerfile: $2"
}
[ "$(grep -Ec '^FROM debian:12(-slim)?( AS [a-z]+)?$' "$df")" -ge 2 ] || fail "Dockerfile: two Debian 12 stages"
ok "Dockerfile: multi-stage, Debian 12"
expect_line '^FROM debian:12-slim$' "runtime stage on debian:12-slim"
expect_line '^RUN scripts/docker-build-stage ' "build stage runs scripts/docker-build-stage"
expect_line 'docker-runtime-stage' "runtime stage runs scripts/docker-runtime-stage"
expect_line '^USER (kamaelia|10001)' "runs as the unprivileged user"
expect_line '^VOLUME \[?"?/var/lib/kamaelia' "data volume /var/lib/kamaelia"
for port in 1600 1601 1700 2525 10023; do
  expect_line "^EXPOSE .*\\b$port/tcp" "exposes $port/tcp"
done
expect_line '^HEALTHCHECK .*' "has a health check"
expect_line '^ +CMD \["kamaelia", "health"\]$' "health check runs kamaelia health (every listener)"
expect_line '^STOPSIGNAL SIGTERM$' "stops with SIGTERM"
expect_line '^ENTRYPOINT \["kamaelia"\]$' "entry point kamaelia"
expect_line '^CMD \["all"\]$' "runs every server by default"
expect_line '^ENV KAMAELIA_CONFIG=/etc/kamaelia/kamaelia.conf' "KAMAELIA_CONFIG set"
expect_line '^ +KAMAELIA_DATA_DIR=/var/lib/kamaelia$' "KAMAELIA_DATA_DIR set"
expect_line '^RUN scripts/docker-build-stage ' "build stage runs scripts/docker-build-stage"
grep -q -- '--build-only' "$src/scripts/docker-build-stage" || fail "the build stage installs more than the build needs"
ok "the build stage runs install-deps --build-only"
build_list=$("$src/scripts/install-deps" --list build)
for p in clang postfix postgrey redis-server libcaf-dev swaks catch2 ccache; do
  if grep -qx "$p" <<< "$build_list"; then fail "install-deps --list build has the test tool $p"; fi
done
grep -qx libsqlite3-dev <<< "$build_list" || fail "install-deps --list build lacks libsqlite3-dev"
grep -qx libsqlite3-0 <<< "$("$src/scripts/install-deps" --list runtime)" || fail "no runtime list"
ok "install-deps: the build list holds only the build's packages"
# The USER line comes after the runtime stage's RUN (which needs root) and
# the VOLUME after it (changes to a volume's directory after VOLUME are lost).
last_run=$(grep -n '^RUN ' "$df" | tail -n1 | cut -d: -f1)
user_line=$(grep -n '^USER ' "$df" | cut -d: -f1)
volume_line=$(grep -n '^VOLUME ' "$df" | cut -d: -f1)
if [ "$user_line" -lt "$last_run" ] || [ "$volume_line" -lt "$last_run" ]; then
  fail "Dockerfile: USER/VOLUME before the last RUN"
fi
ok "Dockerfile: USER and VOLUME after the last RUN"
# Every COPY source (from the context) exists; copy them to a scratch
# context and check that they are enough to configure the Release build.
ctx=$work/context
mkdir -p "$ctx"
while read -r a b; do
  [ -e "$src/$a" ] || fail "Dockerfile copies $a, which does not exist"
  case $b in /*) continue ;; esac   # the runtime stage's copies
  mkdir -p "$ctx/$(dirname "$b")"
  cp -r "$src/$a" "$ctx/${b%/}"
done < <(awk '$1 == "COPY" && $2 !~ /^--/ { print $2, $3 }' "$df")
ok "Dockerfile: every COPY source exists"
if cmake -S "$ctx" -B "$work/context-build" -DCMAKE_BUILD_TYPE=Release \
     -DKAMAELIA_BUILD_TESTS=OFF -DKAMAELIA_BUILD_EXAMPLES=OFF -DKAMAELIA_BUILD_BENCH=OFF > "$work/context-configure.log" 2>&1; then
  ok "Dockerfile: the copied sources configure"
else
  cat "$work/context-configure.log" >&2
  fail "the sources the Dockerfile copies do not configure on their own"
fi
rm -rf "$ctx" "$work/context-build"
grep -q '^build-\*/' "$src/.dockerignore" 2> /dev/null || fail ".dockerignore does not keep build trees out"
ok ".dockerignore keeps build trees out"
if command -v shellcheck > /dev/null; then
  shellcheck "$src/scripts/docker-build-stage" "$src/scripts/docker-runtime-stage" || fail "shellcheck"
  ok "shellcheck of the stage scripts"
fi
if command -v hadolint > /dev/null; then
  hadolint "$df" || fail "hadolint"
  ok "hadolint"
fi

# ---- 2. build stage (reusing this build tree) -----------------------------
prefix=$work/opt/kamaelia
"$src/scripts/docker-build-stage" --reuse-build --build-dir "$KAMAELIA_BINARY_DIR" --no-strip "$prefix"
[ -x "$prefix/bin/kamaelia" ] || fail "docker-build-stage did not install bin/kamaelia"
[ -n "$(find "$prefix" -name KamaeliaConfig.cmake -print -quit)" ] || fail "no CMake package installed"
ok "docker-build-stage installed into $prefix"
if "$src/scripts/docker-build-stage" --reuse-build --build-dir "$work/nowhere" "$work/x" 2> /dev/null; then
  fail "docker-build-stage --reuse-build accepted a missing build tree"
fi
ok "docker-build-stage refuses a missing build tree"

# ---- 3. runtime stage into a temporary root ------------------------------
root=$work/root
mkdir -p "$root"
"$src/scripts/docker-runtime-stage" --root "$root" --dry-run --binary "$prefix/bin/kamaelia"
[ -z "$(ls -A "$root")" ] || fail "--dry-run changed $root"
ok "docker-runtime-stage --dry-run changes nothing"
"$src/scripts/docker-runtime-stage" --root "$root" --no-packages --binary "$prefix/bin/kamaelia"
grep -qx 'kamaelia:x:10001:10001:Kamaelia daemon:/var/lib/kamaelia:/usr/sbin/nologin' "$root/etc/passwd" \
  || fail "user kamaelia not created: $(cat "$root/etc/passwd")"
grep -qx 'kamaelia:x:10001:' "$root/etc/group" || fail "group kamaelia not created"
[ -d "$root/var/lib/kamaelia" ] || fail "no data directory"
[ "$(stat -c %a "$root/var/lib/kamaelia")" = 750 ] || fail "data directory mode $(stat -c %a "$root/var/lib/kamaelia")"
if [ "$(id -u)" -eq 0 ]; then
  [ "$(stat -c %u:%g "$root/var/lib/kamaelia")" = 10001:10001 ] || fail "data directory not owned by 10001"
fi
[ -x "$root/usr/local/bin/kamaelia" ] || fail "binary not in place"
ok "docker-runtime-stage: user, data directory, binary"
# Idempotent: a second run adds nothing.
"$src/scripts/docker-runtime-stage" --root "$root" --no-packages > /dev/null
[ "$(grep -c '^kamaelia:' "$root/etc/passwd")" = 1 ] || fail "second run added the user again"
ok "docker-runtime-stage is idempotent"
if "$src/scripts/docker-runtime-stage" --root "$root" --no-packages --uid 0 2> /dev/null; then
  fail "docker-runtime-stage accepted uid 0"
fi
ok "docker-runtime-stage refuses uid 0"

# ---- 4. the installed daemon --------------------------------------------
kamaelia=$root/usr/local/bin/kamaelia
data=$work/data

# wait_listening LOG NAME: prints the port NAME reports in LOG.
wait_listening() {
  local _ port
  for _ in $(seq 1 200); do
    port=$(sed -n -E "s/.*$2: listening on .*:([0-9]+).*/\\1/p" "$1" | head -n1)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    sleep 0.05
  done
  cat "$1" >&2
  return 1
}
# stop PID: SIGTERM, then the exit status must be 0 within 15 s.
stop() {
  local pid=$1 _
  kill -TERM "$pid"
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2> /dev/null && fail "still running 15 s after SIGTERM"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
}

# One server, as the container would run it (without the root privileges it
# does not need: as nobody if we are root and nobody can reach the binary).
as_user=()
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
  chmod 0755 "$work"
  mkdir -p "$data"
  chown 65534:65534 "$data"
  if setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$kamaelia" 2> /dev/null \
     && setpriv --reuid=65534 --regid=65534 --clear-groups test -w "$data" 2> /dev/null; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  fi
fi
"${as_user[@]}" "$kamaelia" greeter --port 0 --bind 127.0.0.1 --data-dir "$data" > "$work/greeter.log" 2>&1 &
pid=$!
pids+=("$pid")
port=$(wait_listening "$work/greeter.log" greeter) || fail "greeter did not start"
ok "greeter listening on 127.0.0.1:$port${as_user:+ (as nobody)}"
"$kamaelia" health "127.0.0.1:$port" || fail "kamaelia health 127.0.0.1:$port"
ok "kamaelia health 127.0.0.1:$port"
stop "$pid"
ok "greeter: SIGTERM, exit 0"
grep -q "SIGTERM" "$work/greeter.log" || fail "no SIGTERM in the log"
if "$kamaelia" health "127.0.0.1:$port" --timeout 1 2> /dev/null; then
  fail "kamaelia health answered 0 for a stopped server"
fi
ok "kamaelia health fails once the server is gone"

# Every server, from a config file (the container's default command).
cat > "$work/kamaelia.conf" << 'CONF'
# every server on a free port, on loopback
[greeter]
bind = 127.0.0.1
port = 0
[chat]
bind = 127.0.0.1
port = 0
[bbs]
bind = 127.0.0.1
port = 0
[grey]
bind = 127.0.0.1
port = 0
[policy]
bind = 127.0.0.1
port = 0
CONF
"$kamaelia" all --config "$work/kamaelia.conf" --data-dir "$work/data-all" > "$work/all.log" 2>&1 &
pid=$!
pids+=("$pid")
gport=$(wait_listening "$work/all.log" greeter) || fail "kamaelia all: greeter did not start"
cport=$(wait_listening "$work/all.log" chat) || fail "kamaelia all: chat did not start"
for name in bbs grey policy; do
  p=$(wait_listening "$work/all.log" "$name") || fail "kamaelia all: $name did not start"
  "$kamaelia" health "127.0.0.1:$p" || fail "health of $name in kamaelia all"
done
[ -d "$work/data-all" ] || fail "kamaelia all did not create its data directory"
"$kamaelia" health "127.0.0.1:$gport" || fail "health of greeter in kamaelia all"
"$kamaelia" health "127.0.0.1:$cport" || fail "health of chat in kamaelia all"
ok "kamaelia all: greeter :$gport and chat :$cport healthy"
# A connected client must not stop the drain.
exec 3<> "/dev/tcp/127.0.0.1/$gport"
printf 'docker\r\n' >&3
read -r -t 5 reply <&3 || fail "no reply from the greeter"
[ "${reply%$'\r'}" = "hello docker" ] || fail "greeter replied '$reply'"
ok "greeter in kamaelia all replies"
stop "$pid"
exec 3<&-
ok "kamaelia all: SIGTERM with a client connected, exit 0"
echo "packaging_docker_scripts: all passed"
