#!/usr/bin/env bash
# Runs every otpgate test (Debian 12, as root): installs the test tools,
# checks formatting and lints, then unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
# What this run leaves in /tmp is what is newer than this file.
started=$(mktemp)
# Always close with one summary line, also when a step before or during the
# tests fails (a failed step counts as one failure and is named above it).
summary() {
    local rc=$?
    local passed failed
    clean_up
    passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
    failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "test.sh: a step failed before or outside the test binaries (exit $rc)" >&2
        failed=1
    fi
    rm -f "$log" "$started"
    echo
    echo "tests: $passed passed, $failed failed"
    if [ "$rc" -eq 0 ] && [ "$failed" -ne 0 ]; then rc=1; fi
    exit "$rc"
}
trap summary EXIT

# Pass or fail, nothing of this run stays behind: the test directories
# (otpgated's unit tests remove theirs only when they pass),
# clusters and pam_wrapper copies it made in /tmp, and the network
# namespaces and veth links of the fleet tests (their names start ogf/ogh;
# a test that was killed cannot remove its own).
clean_up() {
    # The mail tests' postfix watchers stop the postfix they started once
    # the last test process is gone, reading their record in /tmp: they
    # finish first (at most 30 s).
    local i=0
    while pgrep -f otpgate-postfix-watch >/dev/null 2>&1 && [ "$i" -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    find /tmp -maxdepth 1 -newer "$started" \
        \( -name 'otpgate-*' -o -name 'otpgated-*' -o -name 'pam.*' \) -exec rm -rf {} + 2>/dev/null || true
    if command -v ip >/dev/null; then
        ip netns list 2>/dev/null | awk '$1 ~ /^ogf[0-9]/ {print $1}' | while read -r ns; do
            ip netns del "$ns" 2>/dev/null || true
        done
        ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^ogh[0-9]/ {sub(/@.*/, "", $2); print $2}' | while read -r l; do
            ip link del "$l" 2>/dev/null || true
        done
    fi
}

# The servers the tests need come as Debian packages, whose installation
# starts and enables them where systemd runs. The tests start and stop their
# own instances; a service this run installed is stopped and disabled again.
services_installed_here=""
note_missing_services() {
    local pkg unit pkg_unit
    for pkg_unit in postgresql:postgresql postfix:postfix openssh-server:ssh openvpn:openvpn prometheus:prometheus; do
        pkg=${pkg_unit%%:*}
        unit=${pkg_unit#*:}
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            services_installed_here="$services_installed_here $unit"
        fi
    done
}
leave_services_as_found() {
    if [ -n "$services_installed_here" ] && [ -d /run/systemd/system ]; then
        step "Stopping and disabling the services this run installed:$services_installed_here (the tests run their own)"
        # shellcheck disable=SC2086
        systemctl disable --now $services_installed_here >/dev/null 2>&1 || true
    fi
}

. scripts/common.sh
require_root test.sh "the end-to-end tests create users and load PAM modules"
step "Installing the test tools with apt (PostgreSQL, postfix, OpenSSH server and client, OpenVPN, pam_wrapper, …; a few minutes on a fresh machine)"
note_missing_services
# postfix is the real MTA of the e-mail code tests: local delivery only.
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
with_progress "installing the test tools" apt_install build-essential pkg-config libpam0g-dev libpam-wrapper pamtester faketime \
    passwd util-linux oathtool expect zbar-tools librsvg2-bin libpam-google-authenticator \
    openssh-server openssh-client sudo lintian openvpn openssl libssl-dev postgresql systemd iproute2 \
    python3-yubiotp postfix libnss-wrapper pgbouncer python3-prometheus-client prometheus
leave_services_as_found
find_cargo test.sh
step "cargo-deb 3.8.0 (once, about 2 minutes; skipped when present)"
with_progress "compiling cargo-deb" install_cargo_deb

step "Formatting (cargo fmt --check) and lints (cargo clippy -D warnings; compiles the workspace)"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

# A short bounded fuzzing run of every parser (long runs: scripts/fuzz.sh 3600).
step "Fuzzing each parser for 20 s"
bash scripts/fuzz.sh 20

# The package: built, checked by lintian, installed; the end-to-end SSH and
# sudo tests then use the installed module, and the package test walks it
# through enable, remove and purge (leaving it installed).
step "Building the .deb (release), checking it with lintian, installing it"
deb=$(bash scripts/build-deb.sh)
lintian --fail-on error "$deb"
dpkg -i "$deb" >/dev/null

# Every test binary runs, whatever fails before it; summary() counts them.
step "Running every test binary (unit and end to end; about 10 minutes)"
OTPGATE_E2E_PACKAGE=1 OTPGATE_DEB="$PWD/$deb" \
    cargo test --locked --workspace --no-fail-fast -- --include-ignored 2>&1 | tee "$log"
