#!/usr/bin/env bash
# Builds target/debian/otpgate_VERSION_amd64.deb (needs cargo-deb 3.8.0:
# `cargo install cargo-deb --version 3.8.0 --locked`). Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p pam-otpgate -p otpgate -p otpgated >&2
cargo deb --locked -p otpgate --no-build >&2
ls -t target/debian/otpgate_*.deb | head -n1
