#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, pg_ctl) and faketime exist (tox: postgres).
# cron.testing.postgres starts a throwaway server from them; a cluster test runs nodes
# under faketime. Installs Debian's `postgresql` / `faketime` packages when missing
# (needs root, as on CI). With CRONKIT_TEST_POSTGRES_DSN set the server binaries are
# still wanted: the restart test stops and starts a private server.
set -euo pipefail

find_initdb() {
    if command -v initdb >/dev/null 2>&1; then command -v initdb; return 0; fi
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then echo "$d/initdb"; return 0; fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d/initdb"; return 0; fi
    fi
    return 1
}

missing=()
find_initdb >/dev/null || missing+=(postgresql)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "ensure_postgres: missing ${missing[*]} and we are not root; install with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure_postgres: missing ${missing[*]} and there is no apt-get; install the PostgreSQL server binaries (initdb, pg_ctl) and faketime" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

initdb_path="$(find_initdb)" || {
    echo "ensure_postgres: initdb still not found after installing postgresql" >&2
    exit 1
}
if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
    echo "ensure_postgres: running as root and there is no 'postgres' user (initdb refuses root); create one with: useradd --system postgres" >&2
    exit 1
fi
echo "ensure_postgres: initdb at ${initdb_path}, faketime at $(command -v faketime)"
