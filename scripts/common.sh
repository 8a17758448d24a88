# Shared by install.sh and test.sh: root check, apt packages, finding cargo.

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$1: run as root ($2)" >&2
        exit 1
    fi
}

# A progress line, so nobody stares at a silent terminal for minutes.
step() {
    echo "==> $*" >&2
}

# Runs "$@" (a command or a function), saying every PROGRESS_EVERY seconds
# (default 15) how long it has been at WHAT, so a long quiet step is never
# taken for a hang. Its exit status is the command's.
with_progress() {
    local what=$1
    shift
    local every=${PROGRESS_EVERY:-15}
    "$@" &
    local pid=$! start=$SECONDS next=$((SECONDS + every))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$next" ]; then
            echo "    ... still $what ($((SECONDS - start)) s)" >&2
            next=$((SECONDS + every))
        fi
        sleep 1
    done
    wait "$pid"
}

# apt-get quietly; its output is shown only when it fails.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local log
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "apt-get failed (above); check the network and /etc/apt/sources.list, then run this again" >&2
        return 1
    fi
    rm -f "$log"
}

find_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        for c in "${HOME:-/root}/.cargo/bin/cargo" /root/.cargo/bin/cargo /usr/local/cargo/bin/cargo; do
            if [ -x "$c" ]; then
                PATH="$(dirname "$c"):$PATH"
                export PATH
                break
            fi
        done
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "$1: cargo (Rust 1.89 or newer) is needed; Debian 12's own rustc (1.63) is too old." >&2
        echo "$1: install Rust with rustup (https://rustup.rs), then run this again." >&2
        exit 1
    fi
}

install_cargo_deb() {
    if ! cargo deb --version 2>/dev/null | grep -q '3\.8\.0'; then
        cargo install --quiet cargo-deb --version 3.8.0 --locked
    fi
}
