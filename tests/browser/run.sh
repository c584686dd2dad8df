#!/usr/bin/env bash
# Real-browser tests of the web client. Installs what is missing (Debian's Chromium, playwright-core),
# builds the server, starts it on free loopback ports serving web-client/ (voice relay on a free
# loopback UDP port, advertising only 127.0.0.1), runs the tests in headless Chromium, and always
# stops the server. Screenshots land in artifacts/screenshots/, the server's log in artifacts/.
#
#   tests/browser/run.sh                 # every test
#   tests/browser/run.sh meeting.test.mjs  # one file (relative to tests/browser)
#   BROWSER_TESTS_SKIP_BUILD=1 tests/browser/run.sh  # use the target/debug/circle already built
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/browser"
cd "$ROOT"

if [ ! -x /usr/bin/chromium ]; then
  echo "browser tests: installing Debian's chromium" >&2
  apt-get update
  apt-get install -y chromium
fi
# Install when missing, and again whenever the lock file changed since the last install.
if [ ! -f "$HERE/node_modules/.package-lock.json" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
  echo "browser tests: installing playwright-core and axe-core" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund)
fi

if [ -z "${BROWSER_TESTS_SKIP_BUILD:-}" ]; then
  cargo build -p circle-server
fi

# Two free loopback ports, chosen by the kernel.
read -r API_PORT CLIENT_PORT < <(node -e '
  const net = require("net");
  const a = net.createServer().listen(0, "127.0.0.1", () => {
    const b = net.createServer().listen(0, "127.0.0.1", () => {
      console.log(a.address().port, b.address().port);
      a.close(); b.close();
    });
  });')

export BROWSER_API_URL="http://127.0.0.1:$API_PORT"
export BROWSER_CLIENT_URL="http://127.0.0.1:$CLIENT_PORT"

mkdir -p "$ROOT/artifacts"
LOG="$ROOT/artifacts/browser-tests-server.log"
CIRCLE_SERVER__LISTEN="127.0.0.1:$API_PORT" \
CIRCLE_CLIENT__LISTEN="127.0.0.1:$CLIENT_PORT" \
CIRCLE_CLIENT__URL="$BROWSER_CLIENT_URL" \
CIRCLE_CLIENT__SERVE_DIR=web-client \
CIRCLE_CLIENT__ALLOWED_ORIGINS="[\"$BROWSER_CLIENT_URL\"]" \
CIRCLE_MEDIA__LISTEN="127.0.0.1:0" \
CIRCLE_MEDIA__ADVERTISED_IP="127.0.0.1" \
CIRCLE_LIMITS__ROOMS_PER_CLIENT_BURST=10000 \
  "$ROOT/target/debug/circle" >"$LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT

# Wait until both the API and the client's static server answer (or the server died).
for _ in $(seq 1 100); do
  if curl -fsS "$BROWSER_API_URL/healthz" >/dev/null 2>&1 && curl -fsS "$BROWSER_CLIENT_URL/" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "browser tests: the server did not start; its log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS "$BROWSER_API_URL/healthz" >/dev/null

cd "$HERE"
if [ "$#" -gt 0 ]; then
  FILES=("$@")
else
  FILES=(*.test.mjs)
fi
node --test --test-concurrency=1 --test-reporter=spec "${FILES[@]}"
