#!/usr/bin/env bash
# Installs what otpgate needs, builds it and installs it (Debian 12, as root).
# It does not switch the module on: see README "Enable for sshd / sudo".
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/common.sh
require_root install.sh "it installs packages and PAM files"
step "1/4 Installing build packages with apt (build-essential, libpam0g-dev, libssl-dev; about a minute on a fresh machine)"
with_progress "installing build packages" apt_install build-essential pkg-config libpam0g-dev libssl-dev ca-certificates
find_cargo install.sh

step "2/4 Installing cargo-deb 3.8.0 from crates.io (once, about 2 minutes on 2 cores; skipped when present)"
with_progress "compiling cargo-deb" install_cargo_deb

# Build the Debian package and install it with apt: files, conffile,
# pam-auth-update profile (not enabled), man pages, completions.
step "3/4 Building otpgate (release) and its .deb (about 3 minutes on 2 cores from scratch; compiler output follows)"
deb=$(bash scripts/build-deb.sh)
step "4/4 Installing $deb with apt"
apt-get install -y -qq --reinstall "./$deb" >/dev/null

echo "otpgate installed from $deb:"
echo "  /lib/x86_64-linux-gnu/security/pam_otpgate.so, /usr/bin/otpgate, /etc/otpgate/config.toml"
echo "Nothing is switched on yet. Next: otpgate enroll, then 'pam-auth-update --enable otpgate'"
echo "or one line in /etc/pam.d/sshd (see README). Keep a root shell open while you do."
