#!/usr/bin/env bash
# Circle on a small imitation of the internet: network namespaces joined by veth pairs, with a NAT
# home router and an office firewall, the server in its own namespace at a "public" address, and each
# browser (real headless Chromium) in another namespace. Needs root and `ip netns`; installs what is
# missing (iproute2, nftables, Chromium, certutil, nginx, Caddy, coturn, playwright-core), builds the
# server, builds the network, runs tests/netns/*.test.mjs, and removes every namespace, process and
# file it made, also when a test fails or the run is interrupted (and, at the start, whatever a
# killed run left behind).
#
#   tests/netns/run.sh                      # every case
#   tests/netns/run.sh nat.test.mjs         # one file (relative to tests/netns)
#   NETNS_SKIP_BUILD=1 tests/netns/run.sh   # use the target/debug/circle already built
#   NETNS_CIRCLE_BIN=/path/to/circle ...    # test another build of the server
#
# The network (only documentation ranges, reachable from nowhere but these namespaces):
#
#                         PREFIX-inet: bridge "br0", the internet (203.0.113.0/24)
#     ┌──────────────┬──────────────┼──────────────┬──────────────┐
#   ctl .5         srv .10        pub .30        nat .20        corp .40
#   test runner    circle         a member       home router    office router
#   (creates       (HTTP, UDP     with a         masquerades    masquerades
#   rooms, curl)   + TCP media)   public IP      198.51.100/24  192.0.2.0/24
#                                                    │              ├──────────────┐
#                                               home .10       office .10     locked .11
#                                               a member       drops every    only TCP to the
#                                               behind NAT     UDP packet     server's 443 / 5349
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/netns"
cd "$ROOT"

fail() {
  echo "netns tests: $*" >&2
  exit 1
}

# Never a silent pass: without root or network namespaces nothing here can run.
[ "$(id -u)" -eq 0 ] || fail "must run as root (they create network namespaces, veth pairs and nftables rules); not run"

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v certutil >/dev/null || need+=(libnss3-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v ping >/dev/null || need+=(iputils-ping)
[ -x /usr/bin/chromium ] || need+=(chromium)
# The deployment kit's proxies and TURN relay (deploy*.test.mjs run the files in deploy/).
command -v nginx >/dev/null || need+=(nginx-light)
command -v caddy >/dev/null || need+=(caddy)
command -v turnserver >/dev/null || need+=(coturn)
if [ "${#need[@]}" -gt 0 ]; then
  echo "netns tests: installing ${need[*]}" >&2
  # Installed to be run by the tests only: keep Debian from starting them as services on this
  # machine (nginx would take port 80), unless the machine already has a policy of its own.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
  fi
  apt-get update
  apt-get install -y "${need[@]}" || { [ -z "$policy" ] || rm -f "$policy"; fail "could not install ${need[*]}"; }
  [ -z "$policy" ] || rm -f "$policy"
  trap - EXIT
fi
# tests/browser's packages (playwright-core, and what its lib.mjs imports), when any is missing.
if ! (cd "$ROOT/tests/browser" && node -e '
  const deps = Object.keys(require("./package.json").devDependencies ?? {});
  process.exit(deps.every((d) => require("fs").existsSync(`node_modules/${d}/package.json`)) ? 0 : 1);'); then
  echo "netns tests: installing tests/browser's npm packages" >&2
  (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund)
fi
ip netns list >/dev/null 2>&1 || fail "'ip netns' does not work here (no network namespaces?); not run"

if [ -z "${NETNS_SKIP_BUILD:-}" ]; then
  cargo build -p circle-server
fi

# ---- leftovers of an earlier run that was killed before its trap ran ----------------------------
# Namespaces are named cnt<pid of the run>-<role>; a run whose process is gone left them behind.
remove_netns() {
  local ns=$1
  # Processes still inside (a server, a browser) go first, by their ids, or the namespace lingers.
  local pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null || true
    sleep 0.2
    kill -9 $(ip netns pids "$ns" 2>/dev/null || true) 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
}
for ns in $(ip netns list | awk '{print $1}' | grep -E '^cnt[0-9]+-' || true); do
  owner=${ns#cnt}
  owner=${owner%%-*}
  if ! kill -0 "$owner" 2>/dev/null; then
    echo "netns tests: removing $ns, left by an earlier run" >&2
    remove_netns "$ns"
  fi
done
for dir in /etc/netns/cnt*-*; do
  [ -d "$dir" ] || continue
  owner=${dir#/etc/netns/cnt}
  owner=${owner%%-*}
  [[ $owner =~ ^[0-9]+$ ]] || continue
  kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
done
for dir in /tmp/circle-netns.*; do
  [ -d "$dir" ] || continue
  owner=${dir##*.}
  kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
done

# ---- this run -----------------------------------------------------------------------------------
PREFIX="cnt$$"
WORK="/tmp/circle-netns.$$"
mkdir -p "$WORK"
ROLES=(inet ctl srv pub nat home corp office locked)

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for role in "${ROLES[@]}"; do
    remove_netns "$PREFIX-$role"
    rm -rf "/etc/netns/$PREFIX-$role"
  done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() {
  local ns=$1
  shift
  ip netns exec "$PREFIX-$ns" "$@"
}

# The server's name, as DNS would give it: `ip netns exec` puts /etc/netns/NS/hosts over /etc/hosts
# for whatever runs in NS (Chromium, curl, the tests).
export NETNS_SERVER_NAME=meet.circle.test NETNS_SERVER_IP=203.0.113.10
for role in "${ROLES[@]}"; do
  mkdir -p "/etc/netns/$PREFIX-$role"
  printf '127.0.0.1 localhost\n%s %s\n' "$NETNS_SERVER_IP" "$NETNS_SERVER_NAME" >"/etc/netns/$PREFIX-$role/hosts"
  ip netns add "$PREFIX-$role"
  ip -n "$PREFIX-$role" link set lo up
  # IPv4 only: no link-local IPv6 candidates or router solicitations muddying what is tested.
  in_ns "$role" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done

# A veth pair: NAME in namespace A, PEER in namespace B.
veth() {
  ip link add "$2" netns "$PREFIX-$1" type veth peer name "$4" netns "$PREFIX-$3"
  ip -n "$PREFIX-$1" link set "$2" up
  ip -n "$PREFIX-$3" link set "$4" up
}
# A bridge named br0 in a namespace.
bridge() {
  ip -n "$PREFIX-$1" link add br0 type bridge
  ip -n "$PREFIX-$1" link set br0 up
}
plug() { ip -n "$PREFIX-$1" link set "$2" master br0; }
addr() { ip -n "$PREFIX-$1" addr add "$3" dev "$2"; }
gateway() { ip -n "$PREFIX-$1" route add default via "$2"; }

export NETNS_CTL_IP=203.0.113.5 NETNS_PUB_IP=203.0.113.30
export NETNS_NAT_PUBLIC_IP=203.0.113.20 NETNS_HOME_IP=198.51.100.10
export NETNS_CORP_PUBLIC_IP=203.0.113.40 NETNS_OFFICE_IP=192.0.2.10 NETNS_LOCKED_IP=192.0.2.11
# The only TCP ports the "locked" member may reach on the server: HTTPS and TURN over TLS. And the
# voice relay's port (UDP, and TCP with ICE-TCP).
export NETNS_HTTPS_PORT=443 NETNS_TURN_TLS_PORT=5349 NETNS_MEDIA_PORT=7701

# The internet: one bridge; every public host on 203.0.113.0/24, on-link.
bridge inet
for host in ctl:$NETNS_CTL_IP srv:$NETNS_SERVER_IP pub:$NETNS_PUB_IP; do
  role=${host%%:*}
  veth "$role" eth0 inet "$role"
  plug inet "$role"
  addr "$role" eth0 "${host#*:}/24"
done

# A router namespace with a public side "wan" on the internet and a LAN bridge behind it, which
# masquerades everything leaving by wan (a home router, an office's NAT). Its forward chain counts the
# packets it passes from the LAN to the server over UDP, and over TCP to the media port, so a test can
# tell which way voice went.
router() {
  local role=$1 public=$2 lan=$3
  veth "$role" wan inet "$role"
  plug inet "$role"
  addr "$role" wan "$public/24"
  bridge "$role"
  addr "$role" br0 "$lan"
  in_ns "$role" sysctl -q -w net.ipv4.ip_forward=1
  in_ns "$role" nft -f - <<EOF
table ip circle_test {
  counter to_server_udp {}
  counter to_media_tcp {}
  chain forward {
    type filter hook forward priority filter; policy accept;
    oifname "wan" ip daddr $NETNS_SERVER_IP meta l4proto udp counter name to_server_udp
    oifname "wan" ip daddr $NETNS_SERVER_IP tcp dport $NETNS_MEDIA_PORT counter name to_media_tcp
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
EOF
}
# A member's machine on a router's LAN.
member() {
  local role=$1 router=$2 ip=$3 gw=$4
  veth "$role" eth0 "$router" "$role"
  plug "$router" "$role"
  addr "$role" eth0 "$ip/24"
  gateway "$role" "$gw"
}

router nat "$NETNS_NAT_PUBLIC_IP" 198.51.100.1/24
member home nat "$NETNS_HOME_IP" 198.51.100.1

router corp "$NETNS_CORP_PUBLIC_IP" 192.0.2.1/24
member office corp "$NETNS_OFFICE_IP" 192.0.2.1
member locked corp "$NETNS_LOCKED_IP" 192.0.2.1

# The office machine drops every UDP packet it would send or receive (loopback aside), counting the
# ones it drops: a network that blocks UDP, as many offices, hospitals and libraries do.
in_ns office nft -f - <<EOF
table inet circle_test {
  counter udp_dropped {}
  chain output {
    type filter hook output priority filter; policy accept;
    oifname != "lo" meta l4proto udp counter name udp_dropped drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname != "lo" meta l4proto udp counter name udp_dropped drop
  }
}
EOF
# The locked machine may open only TCP connections to the server's HTTPS and TURN-over-TLS ports;
# everything else it sends is dropped and counted (ICE over UDP, ICE-TCP on the media port). Pings
# pass, for the check below that the network is up.
in_ns locked nft -f - <<EOF
table inet circle_test {
  counter dropped {}
  chain output {
    type filter hook output priority filter; policy drop;
    oifname "lo" accept
    ct state established,related accept
    meta l4proto icmp accept
    ip daddr $NETNS_SERVER_IP tcp dport { $NETNS_HTTPS_PORT, $NETNS_TURN_TLS_PORT } accept
    counter name dropped
  }
}
EOF

# Everything answers: each member reaches the server, through its router where it has one (a ping
# is ICMP, which neither firewall drops).
for role in ctl pub home office locked; do
  in_ns "$role" ping -c 1 -W 2 "$NETNS_SERVER_IP" >/dev/null || fail "$role cannot reach the server's namespace; the network was not built right"
done

export NETNS_PREFIX="$PREFIX" NETNS_WORK="$WORK"
export NETNS_CIRCLE_BIN="${NETNS_CIRCLE_BIN:-$ROOT/target/debug/circle}"
export NETNS_CHROMIUM="$HERE/chromium.sh"
export NETNS_ROOT="$ROOT"
# tests/browser/lib.mjs needs these at import; they are the plain-HTTP server each test starts.
export BROWSER_API_URL="http://$NETNS_SERVER_IP:7700" BROWSER_CLIENT_URL="http://$NETNS_SERVER_IP:8080"

cd "$HERE"
if [ "$#" -gt 0 ]; then
  FILES=("$@")
else
  FILES=(*.test.mjs)
fi
# The tests run on the operator's machine on the internet (ctl): they create rooms and check the
# server from there; each browser runs in its own member's namespace (chromium.sh).
in_ns ctl node --test --test-concurrency=1 --test-reporter=spec "${FILES[@]}"
