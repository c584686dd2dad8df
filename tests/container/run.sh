#!/usr/bin/env bash
# Builds the Dockerfile with podman and checks the image: the container starts read-only as the
# unprivileged user, answers /healthz, serves the web client, and creates a room. The container runs
# in a network namespace of its own with only loopback, and the check talks to it there. The
# container, the image and the namespace are removed at the end, also on failure.
#
#   tests/container/run.sh                  # base images from docker.io and gcr.io
#   LOCAL_BASES=1 tests/container/run.sh    # no registry: local stand-ins (tests/container/local-bases.sh)
#   IMAGE=localhost/circle:x tests/container/run.sh   # check an image built before (kept afterwards)
# Where the OCI runtime cannot create build containers here, BUILDAH_ISOLATION=chroot builds anyway.
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

TAG="${IMAGE:-localhost/circle-test:$$}"
NAME="circle-test-$$"
NS="cct$$"
WORK=$(mktemp -d /tmp/circle-container.XXXXXX)
how=container
pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ "$how" != chroot ] || podman image unmount "$TAG" >/dev/null 2>&1 || true
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "${IMAGE:-}" ] || podman rmi -f "$TAG" >/dev/null 2>&1 || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${IMAGE:-}" ]; then
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
  echo "container test: image built in $(($(date +%s) - started)) s"
fi
echo "container test: image $TAG, $(podman image inspect --format '{{.Size}}' "$TAG") bytes"

ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
# Addresses as a deployment would give them (Circle refuses a listener on all interfaces whose
# public address is this machine only); the check reaches them on the namespace's loopback.
RUN_ENV=(CIRCLE_SERVER__PUBLIC_URL=http://circle.test:7700 CIRCLE_CLIENT__URL=http://circle.test:8080 CIRCLE_MEDIA__ADVERTISED_IP=127.0.0.1)
ENV_FLAGS=()
for e in "${RUN_ENV[@]}"; do ENV_FLAGS+=(-e "$e"); done

# As a container, read-only, in the namespace. Where this machine's OCI runtime cannot start one
# (no CAP_SYS_RESOURCE to set its rlimits, cgroups in hybrid mode), the image's own files are run
# instead, with chroot, as the image's user and with the image's environment, and the test says so.
if ! podman run -d --name "$NAME" --read-only --network "ns:/run/netns/$NS" "${ENV_FLAGS[@]}" "$TAG" >/dev/null 2>"$WORK/run.err"; then
  echo "container test: podman cannot start a container here: $(tail -n 1 "$WORK/run.err")" >&2
  echo "container test: NOT run as a container; running the image's files with chroot instead" >&2
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  how=chroot
  rootfs=$(podman image mount "$TAG")
  mapfile -t image_env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$TAG" | sed '/^$/d')
  image_user=$(podman image inspect --format '{{.Config.User}}' "$TAG")
  uid=$(awk -F: -v u="${image_user%%:*}" '$1 == u {print $3}' "$rootfs/etc/passwd")
  gid=$(awk -F: -v g="${image_user##*:}" '$1 == g {print $3}' "$rootfs/etc/group")
  entry=$(podman image inspect --format '{{index .Config.Entrypoint 0}}' "$TAG")
  in_ns env -i "${image_env[@]}" "${RUN_ENV[@]}" chroot --userspec="$uid:$gid" "$rootfs" "$entry" \
    >"$WORK/chroot.log" 2>&1 &
  pid=$!
fi
running() {
  if [ "$how" = container ]; then [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ]; else kill -0 "$pid" 2>/dev/null; fi
}
for _ in $(seq 1 100); do
  in_ns curl -fsS -o /dev/null http://127.0.0.1:7700/healthz 2>/dev/null && break
  running || { [ "$how" = container ] && podman logs "$NAME" >&2 || cat "$WORK/chroot.log" >&2; fail "the server stopped"; }
  sleep 0.1
done
in_ns curl -fsS http://127.0.0.1:7700/healthz | grep -q '"status":"ok"' || fail "no /healthz"
in_ns curl -fsS http://127.0.0.1:8080/ | grep -q 'src="app.js"' || fail "the web client is not served"
in_ns curl -fsS -X POST -H 'content-type: application/json' -H 'origin: http://circle.test:8080' \
  -d '{"title":"Container check"}' http://127.0.0.1:7700/api/rooms | grep -q '"join_url":"http://circle.test:8080/' \
  || fail "could not create a room"
if [ "$how" = container ]; then
  user=$(podman top "$NAME" user | tail -n +2 | sort -u)
  [ "$user" = nonroot ] || fail "the server runs as '$user', not the unprivileged user"
else
  # The server is the chroot's child (chroot execs it): its uid, as the kernel sees it.
  server=$(pgrep -P "$pid" || echo "$pid")
  user=$(ps -o uid= -p "$server" | tr -d ' ')
  [ "$user" = 65532 ] || fail "the server runs as uid '$user', not the image's unprivileged user"
fi
echo "container test: ok as $how (uid/user $user; /healthz, the web client and room creation answer)"
