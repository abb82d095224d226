# Kamaelia's built-in servers in a container (docs/DEPLOY.md tells more).
#
#   podman build --format docker -t kamaelia .      # (docker build -t kamaelia .)
#   docker run -d --name kamaelia --stop-timeout 15 \
#     -p 1600:1600 -p 1601:1601 -p 1700:1700 -v kamaelia-data:/var/lib/kamaelia kamaelia
#   docker run -d -p 1601:1601 -v kamaelia-data:/var/lib/kamaelia kamaelia greeter   # one server
#   docker stop kamaelia                             # SIGTERM: drains, exits 0
#
# Configuration: a file mounted at /etc/kamaelia/kamaelia.conf (KAMAELIA_CONFIG,
# read when present), or the environment, one rule for every key:
# KAMAELIA_<SECTION>_<KEY> (e.g. -e KAMAELIA_GREY_UPSTREAM=mta:25
# -e KAMAELIA_GREY_ALLOWED_DOMAIN=example.org -e KAMAELIA_POLICY_BIND=0.0.0.0).
# A flag wins over the environment, the environment over the file.
#
# Stopping: connections get KAMAELIA_KAMAELIA_STOP_TIMEOUT seconds (default 8)
# to finish, within Docker's and podman's default 10 s before SIGKILL. Raise
# both together: -e KAMAELIA_KAMAELIA_STOP_TIMEOUT=55 with --stop-timeout 60
# (compose: stop_grace_period: 60s).
#
# Both stages run scripts that also run outside Docker (tests/packaging
# runs them on every test run): scripts/docker-build-stage and
# scripts/docker-runtime-stage. `make container-test` builds and runs this
# image for real.

# ---- build: Debian 12 with only what the Release build needs
# (scripts/install-deps --build-only), installed into /opt/kamaelia
FROM debian:12 AS build
WORKDIR /src
# Only what the Release build needs (no tests, examples or benchmarks).
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY core/ core/
COPY protocols/ protocols/
COPY servers/ servers/
COPY scripts/ scripts/
RUN scripts/docker-build-stage --build-dir /tmp/build /opt/kamaelia

# ---- runtime: the binary, its shared libraries (install-deps --list runtime),
# an unprivileged user
FROM debian:12-slim
COPY scripts/docker-runtime-stage scripts/install-deps /tmp/stage/
COPY --from=build /opt/kamaelia/bin/kamaelia /usr/local/bin/kamaelia
RUN /tmp/stage/docker-runtime-stage --prefix /usr/local --data-dir /var/lib/kamaelia --user kamaelia --uid 10001 \
 && mkdir -p /etc/kamaelia \
 && rm -rf /tmp/stage

# Every server, and every tool (bbs-user, grey-db, health), finds its data here,
# and the config file there when one is mounted.
ENV KAMAELIA_CONFIG=/etc/kamaelia/kamaelia.conf \
    KAMAELIA_DATA_DIR=/var/lib/kamaelia
# The user `kamaelia` (uid/gid 10001), by number so that runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/kamaelia
# SQLite files (bbs, grey, policy) live here; declared after the directory
# is created and owned by the user, so a new volume starts that way.
VOLUME ["/var/lib/kamaelia"]
# bbs 1600, greeter 1601, chat 1700, grey (SMTP) 2525, policy 10023.
# policy binds 127.0.0.1 unless told otherwise: KAMAELIA_POLICY_BIND=0.0.0.0.
EXPOSE 1600/tcp 1601/tcp 1700/tcp 2525/tcp 10023/tcp
# Checks every address the daemon listens on (<data-dir>/run/listeners), so
# it follows whichever servers the container runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["kamaelia", "health"]
# SIGTERM stops accepting, lets connections end within the stop timeout, exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kamaelia"]
CMD ["all"]
