#!/usr/bin/env bash
# Installs what otpgate needs, builds it and installs it (Debian 12, as root).
# It does not switch the module on: see README "Enable for sshd / sudo".
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/common.sh
require_root install.sh "it installs packages and PAM files"
apt_install build-essential pkg-config libpam0g-dev ca-certificates
find_cargo install.sh

cargo build --release --locked -p pam-otpgate -p otpgate

MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
install -D -m 0644 target/release/libpam_otpgate.so "/usr/lib/$MULTIARCH/security/pam_otpgate.so"
install -D -m 0755 target/release/otpgate /usr/bin/otpgate
install -d -m 0755 /etc/otpgate
if [ ! -e /etc/otpgate/config.toml ]; then
    install -m 0644 config/config.toml /etc/otpgate/config.toml
fi
install -d -m 0700 /var/lib/otpgate

echo "otpgate installed: /usr/lib/$MULTIARCH/security/pam_otpgate.so, /usr/bin/otpgate, /etc/otpgate/config.toml"
echo "Next: enroll (otpgate enroll), then enable the module for sshd or sudo as the README explains."
