#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the tests; start them if they
# are installed but down (Debian packages), otherwise explain what is missing.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

start_postgres() {
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
}

start_redis() {
    if command -v redis-server >/dev/null; then
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    fi
}

wait_for() {
    local what=$1 check=$2
    for _ in $(seq 1 30); do
        if $check; then return 0; fi
        sleep 1
    done
    echo "$what is not answering on 127.0.0.1; install and start it (see README)." >&2
    return 1
}

case "${1:-ensure}" in
    ensure)
        pg_up || start_postgres
        redis_up || start_redis
        wait_for PostgreSQL pg_up
        wait_for Redis redis_up
        ;;
    *)
        echo "usage: $0 ensure" >&2
        exit 2
        ;;
esac
