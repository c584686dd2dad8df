# Circle in a container (docs/DEPLOY.md, "Container"). Two stages: the Rust toolchain builds the
# `circle` binary; the runtime image is distroless (glibc and CA roots, no shell, no package
# manager) and runs as an unprivileged user.
#
#   podman build -t circle .          (or docker build)
#   podman run --rm -p 7700:7700 -p 8080:8080 -p 7701:7701/udp \
#     -e CIRCLE_SERVER__PUBLIC_URL=https://meet.example.org \
#     -e CIRCLE_CLIENT__URL=https://meet.example.org \
#     -e CIRCLE_MEDIA__ADVERTISED_IP=203.0.113.10 circle
#
# The voice relay must be reachable at the advertised address on UDP 7701: publish that port as is
# (or use --network host). The only thing written is the data directory /data (standing rooms'
# definitions and the token key; never a meeting): a volume (-v circle-data:/data), so the
# container itself can run read-only (--read-only).

# The two base images; a machine that cannot reach these registries can pass its own copies
# (`--build-arg BUILDER_IMAGE=... --build-arg RUNTIME_IMAGE=...`, tests/container/run.sh).
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# The registry and the target directory are cache mounts, so a rebuild after a source change does
# not fetch or compile the dependencies again.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p circle-server --bin circle \
    && install -D -m 0755 target/release/circle /out/circle \
    && install -d -m 0700 /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/circle /usr/local/bin/circle
COPY web-client /usr/share/circle/web-client
COPY config/circle.toml /etc/circle/circle.toml
COPY --from=build --chown=65532:65532 /out/data /data
# The defaults of config/circle.toml, opened to the container's network: API and websocket on
# 7700, the web client on 8080, voice on UDP 7701. Behind a reverse proxy that terminates HTTPS
# (deploy/nginx.conf, deploy/Caddyfile), publish 7700 and 8080 on loopback only.
ENV CIRCLE_CONFIG=/etc/circle/circle.toml \
    CIRCLE_SERVER__LISTEN=0.0.0.0:7700 \
    CIRCLE_CLIENT__LISTEN=0.0.0.0:8080 \
    CIRCLE_CLIENT__SERVE_DIR=/usr/share/circle/web-client \
    CIRCLE_MEDIA__LISTEN=0.0.0.0:7701 \
    CIRCLE_STORAGE__DATA_DIR=/data \
    RUST_LOG=info
# distroless's "nonroot" user (uid 65532): no capabilities needed, every port is above 1024.
USER nonroot:nonroot
VOLUME /data
EXPOSE 7700/tcp 8080/tcp 7701/udp
ENTRYPOINT ["/usr/local/bin/circle"]
