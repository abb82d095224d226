# Kamaelia's built-in servers in a container.
#
#   docker build -t kamaelia .
#   docker run -d --name kamaelia -p 1601:1601 -p 1700:1700 -v kamaelia-data:/var/lib/kamaelia kamaelia
#   docker run --rm kamaelia greeter --port 1601            # one server
#   docker stop kamaelia                                    # SIGTERM: drains, exits 0
#
# Both stages run scripts that also run outside Docker (tests/packaging
# runs them on every test run): scripts/docker-build-stage and
# scripts/docker-runtime-stage.

# ---- build: Debian 12 with the toolchain, a Release build installed into /opt/kamaelia
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

# ---- runtime: the binary, its shared libraries, an unprivileged user
FROM debian:12-slim
COPY scripts/docker-runtime-stage /tmp/docker-runtime-stage
COPY --from=build /opt/kamaelia/bin/kamaelia /usr/local/bin/kamaelia
RUN /tmp/docker-runtime-stage --prefix /usr/local --data-dir /var/lib/kamaelia --user kamaelia --uid 10001 \
 && rm /tmp/docker-runtime-stage

# The user `kamaelia` (uid/gid 10001), by number so that runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/kamaelia
# SQLite files (bbs, grey, policy) live here; declared after the directory
# is created and owned by the user, so a new volume starts that way.
VOLUME ["/var/lib/kamaelia"]
# bbs 1600, greeter 1601, chat 1700, grey (SMTP) 2525, policy 10023.
# policy binds 127.0.0.1 unless its config says otherwise (see docs).
EXPOSE 1600/tcp 1601/tcp 1700/tcp 2525/tcp 10023/tcp
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["kamaelia", "health", "127.0.0.1:1601"]
# SIGTERM stops accepting, lets connections end within the grace period, exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kamaelia"]
CMD ["all", "--data-dir", "/var/lib/kamaelia"]
