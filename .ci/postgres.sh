# Starts a throwaway PostgreSQL server for the store tests and exports its URL (source it).
# shellcheck shell=bash
#
# Source it (it only sets variables and functions in the calling shell; it never exits it):
#
#     source .ci/postgres.sh          # starts the server, exports MODAL_TEST_POSTGRES_URL
#     cargo test -p modal-runtime --features server --lib store
#     modal_postgres_stop             # stops it and removes its directory
#
# `cargo xtask ci` starts one this way itself when MODAL_TEST_POSTGRES_URL is not set, and stops it
# at the end (`bash .ci/postgres.sh stop` with its MODAL_POSTGRES_DIR).
#
# The server runs as the `postgres` user (through `runuser` when sourced as root), with its data,
# socket and log in a fresh directory ($MODAL_POSTGRES_DIR, default /tmp/modal-ci-postgres),
# listening on 127.0.0.1 only, on the first free port from $MODAL_POSTGRES_PORT (default 55432),
# with trust authentication and fsync off: for tests only. Sourcing it again first stops the
# server it started before in the same directory. PostgreSQL comes from Debian's packages
# (installed with apt-get if no /usr/lib/postgresql/*/bin is present).
#
# Without the function (another shell):
#     runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/modal-ci-postgres/data -m fast stop

# Runs a command as the server's user.
_modal_pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# The newest installed PostgreSQL's bin directory (15 on these machines), on stdout.
_modal_pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
    if [ -z "$dir" ] && [ "$(id -u)" -eq 0 ]; then
        echo "postgres.sh: installing PostgreSQL (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 \
            || return 1
        dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
    fi
    if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
        echo "postgres.sh: no PostgreSQL under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
        return 1
    fi
    echo "$dir"
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
_modal_pg_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Stops the server in $MODAL_POSTGRES_DIR (if any) and removes the directory.
modal_postgres_stop() {
    local root="${MODAL_POSTGRES_DIR:-/tmp/modal-ci-postgres}" bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
    if [ -n "$bin" ] && [ -f "$root/data/postmaster.pid" ]; then
        _modal_pg_as "$bin/pg_ctl" -D "$root/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || _modal_pg_as "$bin/pg_ctl" -D "$root/data" -m immediate -w -t 30 stop >/dev/null 2>&1 \
            || true
    fi
    case "$root" in
        /tmp/?*) rm -rf "$root" ;;
        *) echo "postgres.sh: left $root in place (not under /tmp)" >&2 ;;
    esac
    unset MODAL_TEST_POSTGRES_URL
}

_modal_pg_start() {
    local root="${MODAL_POSTGRES_DIR:-/tmp/modal-ci-postgres}"
    local port="${MODAL_POSTGRES_PORT:-55432}"
    local bin tries
    bin=$(_modal_pg_bin) || return 1
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "postgres.sh: there is no postgres user to run the server as" >&2
        return 1
    fi

    MODAL_POSTGRES_DIR="$root" modal_postgres_stop
    mkdir -p "$root" || return 1
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$root" || return 1
    fi

    tries=0
    while _modal_pg_port_busy "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 50 ]; then
            echo "postgres.sh: no free port from ${MODAL_POSTGRES_PORT:-55432} on" >&2
            return 1
        fi
        port=$((port + 1))
    done

    _modal_pg_as "$bin/initdb" -D "$root/data" -U postgres --auth=trust --no-locale -E UTF8 \
        >"$root/initdb.log" 2>&1 || {
        echo "postgres.sh: initdb failed:" >&2
        cat "$root/initdb.log" >&2
        return 1
    }
    _modal_pg_as "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || {
        echo "postgres.sh: the server did not start:" >&2
        tail -n 20 "$root/server.log" >&2
        return 1
    }

    tries=0
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "postgres.sh: the server is not ready after 30 s:" >&2
            tail -n 20 "$root/server.log" >&2
            return 1
        fi
        sleep 0.5
    done

    _modal_pg_as "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres modal_test || return 1

    export MODAL_POSTGRES_DIR="$root"
    export MODAL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/modal_test"
    echo "postgres.sh: PostgreSQL ($("$bin/postgres" --version | awk '{print $3}')) at $MODAL_TEST_POSTGRES_URL; stop with modal_postgres_stop" >&2
}

# `source .ci/postgres.sh stop` (or `bash .ci/postgres.sh stop`): stops the server in
# $MODAL_POSTGRES_DIR instead of starting one.
if [ "${1:-}" = "stop" ]; then
    modal_postgres_stop
    return 0 2>/dev/null || exit 0
fi
if ! _modal_pg_start; then
    echo "postgres.sh: could not start PostgreSQL" >&2
    # `return` when sourced; `exit` only when run as a program.
    return 1 2>/dev/null || exit 1
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "postgres.sh: run as a program, its exports are lost; source it instead (the server keeps running)" >&2
fi
