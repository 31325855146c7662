#!/usr/bin/env bash
# Checks systemd/secgroupd.service with `systemd-analyze verify` (which works without
# systemd as PID 1) and prints its `systemd-analyze security --offline` exposure.
# verify needs the ExecStart binary to exist, so it checks a temporary copy of the unit
# whose paths point at the binary built by cargo. Any warning fails the check: verify
# itself exits 0 on unknown keys.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-$PWD/target/debug/secgroupd}"
if [ ! -x "$bin" ]; then cargo build --bin secgroupd; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/sbin/secgroupd#$bin#g" systemd/secgroupd.service >"$tmp/secgroupd.service"
out="$(systemd-analyze verify "$tmp/secgroupd.service" 2>&1)" || {
    echo "systemd-analyze verify failed:" >&2
    echo "$out" >&2
    exit 1
}
if [ -n "$out" ]; then
    echo "systemd-analyze verify warned:" >&2
    echo "$out" >&2
    exit 1
fi
echo "systemd-analyze verify: systemd/secgroupd.service ok"
# Informational: the offline security analysis needs no running systemd (v250+).
if systemd-analyze security --offline=true "$tmp/secgroupd.service" >"$tmp/security" 2>&1; then
    grep -a "Overall exposure" "$tmp/security" || true
fi
