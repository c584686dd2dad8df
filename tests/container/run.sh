#!/usr/bin/env bash
# Builds the Dockerfile with podman and checks the image: the container starts read-only as the
# unprivileged user, answers /healthz, serves the web client, and creates a room. The container runs
# in a network namespace of its own with only loopback, and the check talks to it there. The
# container, the image and the namespace are removed at the end, also on failure.
#
#   tests/container/run.sh                  # base images from docker.io and gcr.io
#   LOCAL_BASES=1 tests/container/run.sh    # no registry: local stand-ins (tests/container/local-bases.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fail() {
  echo "container test: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "must run as root (podman, a network namespace); not run"
if ! command -v podman >/dev/null; then
  apt-get update
  apt-get install -y podman
fi

TAG="localhost/circle-test:$$"
NAME="circle-test-$$"
NS="cct$$"
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  podman rmi -f "$TAG" >/dev/null 2>&1 || true
  ip netns del "$NS" 2>/dev/null || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BUILD_ARGS=()
if [ -n "${LOCAL_BASES:-}" ]; then
  if ! podman image exists localhost/circle-builder-base:local || ! podman image exists localhost/circle-runtime-base:local; then
    "$ROOT/tests/container/local-bases.sh"
  fi
  BUILD_ARGS+=(--build-arg BUILDER_IMAGE=localhost/circle-builder-base:local
    --build-arg RUNTIME_IMAGE=localhost/circle-runtime-base:local)
fi

started=$(date +%s)
nice -n 10 podman build "${BUILD_ARGS[@]}" -t "$TAG" "$ROOT"
echo "container test: image built in $(($(date +%s) - started)) s, $(podman image inspect --format '{{.Size}}' "$TAG") bytes"

ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
podman run -d --name "$NAME" --read-only --network "ns:/run/netns/$NS" \
  -e CIRCLE_SERVER__PUBLIC_URL=http://127.0.0.1:7700 \
  -e CIRCLE_CLIENT__URL=http://127.0.0.1:8080 \
  -e CIRCLE_MEDIA__ADVERTISED_IP=127.0.0.1 \
  "$TAG" >/dev/null

for _ in $(seq 1 100); do
  in_ns curl -fsS -o /dev/null http://127.0.0.1:7700/healthz 2>/dev/null && break
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || { podman logs "$NAME" >&2; fail "the container stopped"; }
  sleep 0.1
done
in_ns curl -fsS http://127.0.0.1:7700/healthz | grep -q '"status":"ok"' || fail "no /healthz"
in_ns curl -fsS http://127.0.0.1:8080/ | grep -q 'src="app.js"' || fail "the web client is not served"
in_ns curl -fsS -X POST -H 'content-type: application/json' -H 'origin: http://127.0.0.1:8080' \
  -d '{"title":"Container check"}' http://127.0.0.1:7700/api/rooms | grep -q '"join_url":"http://127.0.0.1:8080/' \
  || fail "could not create a room"
user=$(podman top "$NAME" user | tail -n +2 | sort -u)
[ "$user" = nonroot ] || fail "the server runs as '$user', not the unprivileged user"
echo "container test: ok (runs as $user, read-only; /healthz, the web client and room creation answer)"
