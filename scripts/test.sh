#!/usr/bin/env bash
# Runs every otpgate test (Debian 12, as root): installs the test tools,
# checks formatting and lints, then unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/common.sh
require_root test.sh "the end-to-end tests create users and load PAM modules"
apt_install build-essential pkg-config libpam0g-dev libpam-wrapper pamtester faketime \
    passwd util-linux oathtool expect zbar-tools librsvg2-bin libpam-google-authenticator
find_cargo test.sh

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
