# syntax=docker/dockerfile:1
# gangway in a container: built from this workspace, run as a non-root user on distroless.
#
#   docker build -t gangway .
#   docker run --rm -p 127.0.0.1:8443:8443 gangway demo --bind 0.0.0.0 --http-port 8080 --https-port 8443
#   docker run -d -p 443:443 -v /etc/gangway:/etc/gangway:ro gangway          # run -c /etc/gangway/gangway.toml
#   docker kill --signal=HUP <container>     # reload;  --signal=USR1 reopens the access log
#
# packaging/docker-check.sh builds the image and checks that it serves the demo.

# --- build ------------------------------------------------------------------------------
# Debian 12 (bookworm), as the runtime below: the binary links the same glibc.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds; the binary is
# copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gangway \
    && install -D -m 0755 target/release/gangway /out/usr/local/bin/gangway \
    && install -d -m 0755 /out/etc/gangway \
    && install -d -m 0750 /out/var/log/gangway

# --- run --------------------------------------------------------------------------------
# glibc, libgcc, CA certificates and tzdata; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/gangway /usr/local/bin/gangway
COPY --from=build /out/etc/gangway /etc/gangway
# Writable by the runtime user, for an access_log path such as /var/log/gangway/access.log.
COPY --from=build --chown=65532:65532 /out/var/log/gangway /var/log/gangway
# 65532 is the image's `nonroot` user and group.
USER 65532:65532
# Docker lets unprivileged users bind every port in a container's network namespace
# (net.ipv4.ip_unprivileged_port_start=0), so 80 and 443 need no capability.
EXPOSE 80 443
# SIGTERM drains for [server] drain_timeout (30 s by default): give `docker stop` longer,
# e.g. `docker stop -t 45`, or stop_grace_period in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gangway"]
CMD ["run", "-c", "/etc/gangway/gangway.toml"]
