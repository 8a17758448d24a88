#!/usr/bin/env bash
# Builds target/debian/otpgate_VERSION_amd64.deb (needs cargo-deb 3.8.0:
# `cargo install cargo-deb --version 3.8.0 --locked`). Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
# The module alone: built together with the binaries, its dependencies'
# features would be unified with theirs, which changes the mangled names
# pam-module/hot-functions.txt lists (see scripts/hot-functions.sh).
cargo build --release --locked -p pam-otpgate >&2
cargo build --release --locked -p otpgate -p otpgated >&2
cargo deb --locked -p otpgate --no-build >&2
ls -t target/debian/otpgate_*.deb | head -n1
