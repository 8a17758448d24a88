#!/usr/bin/env bash
# Fuzzes the config parser, the secret/state-file parsers, the input
# normalisers and otpgated's protocol with cargo fuzz (libFuzzer), SECONDS
# per target (default 20).
# A long run: bash scripts/fuzz.sh 3600. Crashes land in fuzz/artifacts/.
# cargo fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 enables them on
# the stable toolchain this project builds with.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
. scripts/common.sh
find_cargo fuzz.sh
if ! cargo fuzz --version 2>/dev/null | grep -q '0\.13\.2'; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
cd fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in config secret_file input protocol; do
    mkdir -p "corpus/$target"
    cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 2>&1 | grep -E '^Done|ERROR|panicked|SUMMARY' || true
    # cargo fuzz exits non-zero on a crash; grep above hides nothing: check artifacts.
    if compgen -G "artifacts/$target/*" >/dev/null; then
        echo "fuzz: $target found a failing input in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: no crash, hang or panic in ${seconds}s per target"
