#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests, including the network
# namespace tests against the real kernel (needs root; they fail, not skip, without it
# unless SECGROUPD_SKIP_NETNS=1 is set).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ] && [ "${SECGROUPD_SKIP_NETNS:-}" != 1 ]; then
    echo "scripts/test.sh: run as root (the netns tests need it), or set SECGROUPD_SKIP_NETNS=1" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then scripts/setup.sh; fi
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# The systemd unit (systemd-analyze verify; works without systemd as PID 1).
scripts/verify-unit.sh
# The cargo-fuzz crate builds (it runs only with nightly; on stable its body runs in
# tests/fuzz_query.rs above). Same target dir: it reuses the dependencies built above.
cargo check --quiet --manifest-path fuzz/Cargo.toml --target-dir target
# The benchmark's smoke test (tiny sizes, seconds): every part of secgroupd-bench runs and
# every request is answered; the numbers are not checked. Needs root, like the netns tests.
if [ "$(id -u)" -eq 0 ]; then
    cargo run --bin secgroupd-bench -- --quick --out target/bench-quick
else
    echo "scripts/test.sh: not root: skipping secgroupd-bench --quick" >&2
fi
