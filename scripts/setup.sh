#!/usr/bin/env bash
# Installs the system packages secgroupd builds, runs and is tested with (Debian).
# Idempotent: does nothing when everything is present.
set -euo pipefail
# systemd: systemd-analyze, to verify the unit. util-linux: setpriv, for tests that run
# clients as other users and the daemon with only the unit's capabilities. g++: building
# libFuzzer for the fuzz crate's check.
packages=(libnftnl-dev libmnl-dev nftables iproute2 conntrack socat curl iputils-ping pkg-config
    systemd util-linux g++)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
