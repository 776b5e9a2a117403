#!/usr/bin/env bash
# bench/postgres.sh start|stop DIR PORT — a private PostgreSQL cluster for the benchmark's shared
# outbox: Debian's server binaries (initdb + pg_ctl, no system service), on 127.0.0.1:PORT, TLS
# with the benchmark's certificate (DIR/tls, made by bench/postfix.sh), scram-sha-256, the
# server's default settings but for max_connections. As root it runs as the postgres user.
# Database "bench", user "bench", password "bench-pw".
set -euo pipefail
CMD=${1:?usage: bench/postgres.sh start|stop DIR PORT} W=${2:?DIR} PORT=${3:-19432}
D=$W/pg
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
run=()
if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
case $CMD in
  start)
    [ -x "$bin/initdb" ] || { echo "bench: PostgreSQL's server is not installed (apt postgresql)" >&2; exit 1; }
    rm -rf "$D"; mkdir -p "$D"
    echo bench-pw >"$D/pwfile"
    cp "$W/tls/cert.pem" "$D/server.crt"; cp "$W/tls/key.pem" "$D/server.key"; chmod 600 "$D/server.key"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$D"; fi
    "${run[@]}" "$bin/initdb" -D "$D/data" -U bench --auth=scram-sha-256 --pwfile="$D/pwfile" \
      -E UTF8 --locale=C.UTF-8 >"$D/initdb.log" 2>&1 || { cat "$D/initdb.log" >&2; exit 1; }
    "${run[@]}" "$bin/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D -c max_connections=200 -c ssl=on -c ssl_cert_file=$D/server.crt -c ssl_key_file=$D/server.key" \
      start >/dev/null || { cat "$D/server.log" >&2; exit 1; }
    PGPASSWORD=bench-pw "$bin/psql" -qAt -h 127.0.0.1 -p "$PORT" -U bench -d postgres -c "CREATE DATABASE bench" >/dev/null
    ;;
  stop)
    [ -f "$D/data/postmaster.pid" ] || exit 0
    "${run[@]}" "$bin/pg_ctl" -D "$D/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: bench/postgres.sh start|stop DIR PORT" >&2; exit 64 ;;
esac
