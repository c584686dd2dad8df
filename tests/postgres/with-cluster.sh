#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL cluster: `tests/postgres/with-cluster.sh cargo test …`.
#
# Installs Debian's `postgresql` when missing (root), creates a cluster in a temporary directory,
# listening on loopback only (a free port, and a socket in that directory), creates a database, and
# runs the command with POSTGRES_TEST_URL and POSTGRES_TEST_REQUIRED=1 exported (so the
# PostgreSQL cases of crates/circle-store/tests fail rather than skip if something is wrong). The
# cluster is stopped and its directory removed on every exit path. Exits with the command's status.
# The variables do not start with `CIRCLE_`: the server reads every `CIRCLE_*` variable as a setting
# and refuses unknown ones, and the servers the tests start inherit this environment.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 <command> [args…]" >&2
    exit 2
fi

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

PG_BIN=$(find_bin)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "with-cluster: PostgreSQL is not installed; run as root (apt-get install postgresql)" >&2
        exit 1
    fi
    echo "with-cluster: installing Debian's postgresql" >&2
    # The package would create and start a system-wide "main" cluster; the tests need none.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/circle-tests.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold \
        postgresql >/dev/null
    PG_BIN=$(find_bin)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/circle-pg.XXXXXXXX")
DATA="$TMP/data"

# initdb refuses to run as root: as root, the cluster belongs to the `postgres` user.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$TMP" && runuser -u postgres -- "$@")
    else
        (cd "$TMP" && "$@")
    fi
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -f "$DATA/postmaster.pid" ]; then
        as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    # If the server did not stop, end it by its own pid (never by name: other clusters may run).
    if [ -f "$DATA/postmaster.pid" ]; then
        kill -9 "$(head -n 1 "$DATA/postmaster.pid")" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$TMP"
fi
chmod 700 "$TMP"

as_owner "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust --no-locale -E UTF8 --no-sync \
    >"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; exit 1; }

# A free loopback port: try random ones until the server starts on one (another process may take a
# port between a check and the bind, so the start itself is the test).
started=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    PORT=$((20000 + RANDOM % 40000))
    if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
        continue
    fi
    if as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $TMP -c fsync=off -c full_page_writes=off" \
        >/dev/null 2>&1; then
        started=1
        break
    fi
done
if [ -z "$started" ]; then
    echo "with-cluster: the PostgreSQL server did not start:" >&2
    cat "$TMP/server.log" >&2 || true
    exit 1
fi

as_owner "$PG_BIN/psql" -X -q -h "$TMP" -p "$PORT" -U postgres -d postgres \
    -c "CREATE DATABASE circle_test" >/dev/null

export POSTGRES_TEST_URL="postgres://postgres@127.0.0.1:$PORT/circle_test"
export POSTGRES_TEST_REQUIRED=1
echo "with-cluster: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
