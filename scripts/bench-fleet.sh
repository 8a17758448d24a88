#!/usr/bin/env bash
# Benchmarks fleet mode against files: logins per second and p50/p99
# latency of the login flow the module runs (core::auth, each login opening
# its store as the module does), with 1, 8 and 64 concurrent logins; fleet
# logins go through two otpgated (two "servers") to one local PostgreSQL 15
# (fsync on, as in production). Prints one line per row; the README quotes
# them.
#
#   bash scripts/bench-fleet.sh [LOGINS_PER_THREAD] [SERVERS] [SCALE_LOGINS]
#       (defaults 100, 50, 20)
#
# Then the fleet at scale: SERVERS otpgated (SERVERS simulated servers) on
# the same PostgreSQL, directly and through PgBouncer (transaction
# pooling): logins/s, p50/p99 at 1, 8 and 64 concurrent logins spread over
# the servers, the connections PostgreSQL holds at peak and at rest, what
# one server costs, 32 logins racing with one right code; and pgbench with
# the statements of one login, for the database's own limit.
#
# Needs root; creates 64 throw-away users and a throw-away database cluster,
# removes them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGINS=${1:-100}
SERVERS=${2:-50}
SCALE_LOGINS=${3:-20}
. scripts/common.sh
require_root bench-fleet.sh "it creates users and a PostgreSQL cluster"
apt_install postgresql postgresql-contrib pgbouncer libssl-dev pkg-config
find_cargo bench-fleet.sh
cargo build --release --locked -p otpgate -p otpgated -p otpgate-tests >/dev/null 2>&1

ROOT=$PWD
B=$(mktemp -d /tmp/otpgate-fleet-bench.XXXXXX)
chmod 755 "$B"
PREFIX=ogfb$$x
PG=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
PIDS=()
SCALE_PIDS=()
cleanup() {
    for p in "${PIDS[@]}" "${SCALE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -f "$B/pgb/pgbouncer.pid" ]; then kill "$(cat "$B/pgb/pgbouncer.pid")" 2>/dev/null || true; fi
    if [ -f "$B/pi/gunicorn.pid" ]; then kill "$(cat "$B/pi/gunicorn.pid")" 2>/dev/null || true; fi
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
max_connections = 300
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

# --- The fleet at scale ----------------------------------------------------
psql_q() { runuser -u postgres -- "$PG/psql" -h "$B/sock" -X -q -A -t -d postgres -c "$1"; }
connections() { psql_q "SELECT count(*) FROM pg_stat_activity WHERE usename = 'otpgate'"; }
start_servers() { # $1: the database string every server uses
    local i
    for i in $(seq 1 "$SERVERS"); do
        printf 'store = "postgresql"\ndatabase = "%s"\nsecret_key_file = "%s/secret.key"\ndaemon_socket = "%s/s%d.sock"\ndaemon_state_dir = "%s/seen-s%d"\ndatabase_idle_timeout = 5\nstore_timeout = 30\n' \
            "$1" "$B" "$B" "$i" "$B" "$i" > "$B/scale-$i.toml"
        "$ROOT/target/release/otpgated" --config "$B/scale-$i.toml" 2>>"$B/scale-$i.log" &
        SCALE_PIDS+=($!)
    done
    for i in $(seq 1 "$SERVERS"); do
        for _ in $(seq 1 400); do [ -S "$B/s$i.sock" ] && break; sleep 0.05; done
    done
}
stop_servers() {
    kill "${SCALE_PIDS[@]}" 2>/dev/null || true
    wait "${SCALE_PIDS[@]}" 2>/dev/null || true
    SCALE_PIDS=()
    rm -f "$B"/s*.sock
}
run_scale() { # $1: a label for the lines; $2: the fake time of its first login
    rm -f "$B/stop-sampling"
    echo 0 > "$B/peak"
    ( peak=0; while [ ! -e "$B/stop-sampling" ]; do
        n=$(connections); [ "$n" -gt "$peak" ] && peak=$n && echo "$peak" > "$B/peak"; sleep 0.1
      done ) &
    local sampler=$!
    "$ROOT/target/release/bench_fleet" scale "$PREFIX" "$SCALE_LOGINS" "$2" "$B"/scale-*.toml | sed "s/^/$1 /"
    touch "$B/stop-sampling"
    wait "$sampler" || true
    # At rest: database_idle_timeout is 5 s here; the reaper runs every 2 s.
    sleep 8
    local rss=0 p
    for p in "${SCALE_PIDS[@]}"; do
        rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
    done
    echo "$1 servers=$SERVERS pg_connections_peak=$(cat "$B/peak") pg_connections_at_rest=$(connections) daemon_rss_kib_each=$((rss / SERVERS))"
    # (Through PgBouncer, the connections at rest are PgBouncer's own, kept
    # for server_idle_timeout; the daemons hold none.)
}

# The two daemons above go first: only the scale servers' connections count.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${PIDS[@]}" 2>/dev/null || true
PIDS=()
step "Fleet at scale: $SERVERS otpgated on one PostgreSQL, $SCALE_LOGINS logins per thread"
start_servers "host=$B/sock dbname=otpgate user=otpgate"
run_scale direct 1900000000
stop_servers

mkdir -p "$B/pgb"
chown postgres: "$B/pgb"
echo '"otpgate" ""' > "$B/pgb/users.txt"
cat > "$B/pgb/pgbouncer.ini" <<INI
[databases]
otpgate = host=$B/sock dbname=otpgate user=otpgate
[pgbouncer]
listen_addr =
unix_socket_dir = $B/pgb
listen_port = 6439
auth_type = trust
auth_file = $B/pgb/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 2000
logfile = $B/pgb/pgbouncer.log
pidfile = $B/pgb/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
INI
chown -R postgres: "$B/pgb"
runuser -u postgres -- /usr/sbin/pgbouncer -d "$B/pgb/pgbouncer.ini"
for _ in $(seq 1 200); do [ -S "$B/pgb/.s.PGSQL.6439" ] && break; sleep 0.05; done
step "The same through PgBouncer (transaction pooling, pool 20)"
start_servers "host=$B/pgb port=6439 dbname=otpgate user=otpgate"
run_scale pgbouncer 2000000000
stop_servers
kill "$(cat "$B/pgb/pgbouncer.pid")" 2>/dev/null || true

# privacyIDEA 3.14 on the same PostgreSQL: its own /validate/check under
# gunicorn (4 workers), TOTP tokens with the same secret for the same users.
step "privacyIDEA 3.14 beside it (PyPI, in a venv; its first install takes a few minutes)"
PI=$B/pi
mkdir -p "$PI"
with_progress "installing privacyIDEA" bash -c "python3 -m venv '$PI/venv' && '$PI/venv/bin/pip' install -q 'privacyidea==3.14' gunicorn psycopg2-binary"
psql_q "CREATE DATABASE pi OWNER otpgate" >/dev/null
cat > "$PI/pi.cfg" <<CFG
SUPERUSER_REALM = ['super']
SQLALCHEMY_DATABASE_URI = 'postgresql+psycopg2://otpgate@/pi?host=$B/sock'
SECRET_KEY = '$(head -c 24 /dev/urandom | base64)'
PI_PEPPER = '$(head -c 24 /dev/urandom | base64)'
PI_ENCFILE = '$PI/enckey'
PI_AUDIT_KEY_PRIVATE = '$PI/private.pem'
PI_AUDIT_KEY_PUBLIC = '$PI/public.pem'
PI_LOGFILE = '$PI/privacyidea.log'
PI_LOGLEVEL = 30
CFG
export PRIVACYIDEA_CONFIGFILE=$PI/pi.cfg
pim() { "$PI/venv/bin/pi-manage" "$@" >>"$PI/setup.log" 2>&1; }
pim setup create_enckey
pim setup create_audit_keys
pim setup create_tables
pim admin add benchadmin -p benchadmin-pw
echo "{'fileName': '/etc/passwd'}" > "$PI/resolver.conf"
pim config resolver create users passwdresolver "$PI/resolver.conf"
pim config realm create users users
printf 'from privacyidea.app import create_app\napplication = create_app(config_name="production", config_file="%s", silent=True)\n' \
    "$PI/pi.cfg" > "$PI/piapp.py"
(cd "$PI" && "$PI/venv/bin/gunicorn" -w 4 -b 127.0.0.1:5089 --daemon --pid "$PI/gunicorn.pid" \
    --log-file "$PI/gunicorn.log" piapp:application)
for _ in $(seq 1 300); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5089/healthz/', timeout=1)" 2>/dev/null && break
    sleep 0.2
done
"$PI/venv/bin/python" "$ROOT/scripts/bench-privacyidea.py" http://127.0.0.1:5089 "$PREFIX" benchadmin benchadmin-pw \
    || { echo "privacyIDEA did not run; its logs:" >&2; tail -n 20 "$PI/setup.log" "$PI/gunicorn.log" >&2; }
kill "$(cat "$PI/gunicorn.pid")" 2>/dev/null || true

# The database's own limit: the statements of one login — its first
# request reads the enrollment and the state in one statement, its last
# writes the state by compare-and-set — as pgbench runs them, in the
# extended protocol with unnamed statements as otpgated sends them (and,
# for comparison, in the simple protocol). Last: its updates leave the
# states without a valid MAC.
cat > "$B/login.sql" <<SQL
\set n random(0, 63)
SELECT e.enrollment_id, e.nonce, e.sealed, e.counter, e.removed, s.version, s.state, s.mac FROM (SELECT '$PREFIX' || :n AS user_name) AS q LEFT JOIN otpgate_enrollments e ON e.user_name = q.user_name LEFT JOIN otpgate_states s ON s.user_name = q.user_name;
UPDATE otpgate_states SET version = version + 1, updated_at = now() WHERE user_name = '$PREFIX' || :n AND version = version;
SQL
chmod 644 "$B/login.sql"
for mode in extended simple; do
    for c in 8 64; do
        # A checkpoint first, so none falls inside the measured seconds.
        psql_q "CHECKPOINT" >/dev/null
        tps=$(runuser -u postgres -- "$PG/pgbench" -h "$B/sock" -U otpgate -n -M "$mode" -f "$B/login.sql" -c "$c" -j 2 -T 15 otpgate 2>/dev/null \
            | awk '/^tps/ {print int($3)}' | tail -n1)
        echo "pgbench login-statements protocol=$mode clients=$c logins_per_s=$tps"
    done
done
