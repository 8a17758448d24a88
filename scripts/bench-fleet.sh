#!/usr/bin/env bash
# Benchmarks fleet mode against files: logins per second and p50/p99
# latency of the login flow the module runs (core::auth, each login opening
# its store as the module does), with 1, 8 and 64 concurrent logins; fleet
# logins go through two otpgated (two "servers") to one local PostgreSQL 15
# (fsync on, as in production). Prints one line per row; the README quotes
# them.
#
#   bash scripts/bench-fleet.sh [LOGINS_PER_THREAD]     (default 100)
#
# Needs root; creates 64 throw-away users and a throw-away database cluster,
# removes them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGINS=${1:-100}
. scripts/common.sh
require_root bench-fleet.sh "it creates users and a PostgreSQL cluster"
apt_install postgresql libssl-dev pkg-config
find_cargo bench-fleet.sh
cargo build --release --locked -p otpgate -p otpgated -p otpgate-tests >/dev/null 2>&1

ROOT=$PWD
B=$(mktemp -d /tmp/otpgate-fleet-bench.XXXXXX)
chmod 755 "$B"
PREFIX=ogfb$$x
PG=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    runuser -u postgres -- "$PG/pg_ctl" -D "$B/pg" -m immediate stop >/dev/null 2>&1 || true
    for i in $(seq 0 63); do userdel -f "$PREFIX$i" >/dev/null 2>&1 || true; done
    rm -rf "$B"
}
trap cleanup EXIT

# PostgreSQL: a private cluster on a Unix socket in $B.
mkdir -p "$B/pg" "$B/sock"
chown postgres: "$B/pg" "$B/sock"
runuser -u postgres -- "$PG/initdb" -D "$B/pg" --auth-local=trust --username=postgres >/dev/null 2>&1
cat >> "$B/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$B/sock'
max_connections = 200
CONF
runuser -u postgres -- "$PG/pg_ctl" -D "$B/pg" -l "$B/pg/server.log" -w start >/dev/null
runuser -u postgres -- "$PG/psql" -h "$B/sock" -q -c "CREATE ROLE otpgate LOGIN" postgres
runuser -u postgres -- "$PG/psql" -h "$B/sock" -q -c "CREATE DATABASE otpgate OWNER otpgate" postgres

head -c 32 /dev/urandom | base64 > "$B/secret.key"
chmod 600 "$B/secret.key"
printf 'state_dir = "%s/state"\nsecret_path = "%s/secrets/%%u.toml"\n' "$B" "$B" > "$B/files.toml"
for s in a b; do
    printf 'store = "postgresql"\ndatabase = "host=%s dbname=otpgate user=otpgate"\nsecret_key_file = "%s/secret.key"\ndaemon_socket = "%s/%s.sock"\ndaemon_state_dir = "%s/seen-%s"\n' \
        "$B/sock" "$B" "$B" "$s" "$B" "$s" > "$B/fleet-$s.toml"
    "$ROOT/target/release/otpgated" --config "$B/fleet-$s.toml" 2>>"$B/otpgated-$s.log" &
    PIDS+=($!)
done
for s in a b; do
    for _ in $(seq 1 200); do [ -S "$B/$s.sock" ] && break; sleep 0.05; done
done

SECRET=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
for i in $(seq 0 63); do
    useradd -M -d /nonexistent -s /bin/sh "$PREFIX$i"
    for c in files fleet-a; do
        echo "$SECRET" | "$ROOT/target/release/otpgate" --config "$B/$c.toml" enroll --user "$PREFIX$i" \
            --secret - --no-confirm --recovery-codes 0 --qr none >/dev/null
    done
done
echo "fleet bench: $(nproc) CPUs, $("$PG/postgres" --version), $LOGINS logins per thread"
"$ROOT/target/release/bench_fleet" "$B/files.toml" "$B/fleet-a.toml" "$B/fleet-b.toml" "$PREFIX" "$LOGINS"
