#!/usr/bin/env bash
# Playwright's "browser executable" for the netns tests: Debian's Chromium started inside the member's
# network namespace (NETNS_MEMBER_NS, set per browser by tests/netns/lib.mjs). Playwright drives it over
# its pipe (file descriptors 3 and 4, which `ip netns exec` passes on), so the control channel needs no
# network; the page's own traffic leaves by the namespace's interfaces only.
set -euo pipefail
: "${NETNS_MEMBER_NS:?chromium.sh: NETNS_MEMBER_NS names the namespace to run Chromium in}"
exec ip netns exec "$NETNS_MEMBER_NS" /usr/bin/chromium "$@"
