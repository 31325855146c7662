#!/usr/bin/env bash
# secgroupd demo: a revoke cutting real traffic, in throwaway network namespaces.
#
#   client (10.9.0.2) --- cl0 [ host: secgroupd ] tap1 --- web (10.1.1.2)
#                                                 tap2 --- web2 (10.1.2.2)
#
# Builds secgroupd, creates the namespaces, starts the daemon in the host namespace,
# and shows traffic from the client to two instances of group "web" before and after
# authorize and revoke, with the kernel table. Everything is removed at exit.
# Needs root. Touches nothing outside the namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
scripts/setup.sh
cargo build --release --quiet --bin secgroupd --bin secgroupctl
BIN=$PWD/target/release

P=sgdemo-$$
HOST=$P-host CLIENT=$P-client WEB=$P-web WEB2=$P-web2
TMP=$(mktemp -d /tmp/sgdemo.XXXXXX)
SOCK=$TMP/control.sock
DAEMON=

cleanup() {
    set +e
    [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    for ns in $CLIENT $WEB $WEB2 $HOST; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

say "creating namespaces: host (hypervisor), client, two instances"
for ns in $HOST $CLIENT $WEB $WEB2; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
in_ns $HOST sysctl -qw net.ipv4.ip_forward=1
link() { # link <node-ns> <host-if> <subnet-prefix e.g. 10.1.1>
    ip -n $HOST link add "$2" type veth peer name eth0 netns "$1"
    ip -n $HOST addr add "$3.1/24" dev "$2"; ip -n $HOST link set "$2" up
    ip -n "$1" addr add "$3.2/24" dev eth0; ip -n "$1" link set eth0 up
    ip -n "$1" route add default via "$3.1"
}
link $CLIENT cl0 10.9.0
link $WEB tap1 10.1.1
link $WEB2 tap2 10.1.2

say "starting TCP echo servers on ports 80 and 22, and a UDP echo server on 53, in both instances"
for ns in $WEB $WEB2; do
    in_ns $ns socat TCP-LISTEN:80,reuseaddr,fork EXEC:cat 2>/dev/null &
    in_ns $ns socat TCP-LISTEN:22,reuseaddr,fork EXEC:cat 2>/dev/null &
    in_ns $ns socat UDP-RECVFROM:53,fork EXEC:cat 2>/dev/null &
done
sleep 0.3

cat >"$TMP/secgroupd.toml" <<EOF
socket = "$SOCK"
state_dir = "$TMP/state"
table = "secgroupd"
owner_id = "000000000000"
propagation_delay_ms = 10
EOF
say "starting secgroupd in the host namespace"
in_ns $HOST "$BIN/secgroupd" --config "$TMP/secgroupd.toml" 2>"$TMP/daemon.log" &
DAEMON=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$TMP/daemon.log"; exit 1; }

ctl() { printf "$ secgroupctl"; printf " %q" "$@"; echo; "$BIN/secgroupctl" --socket "$SOCK" "$@"; }
probe() { # probe <proto> <addr> <port>
    case $1 in
    tcp) echo hi | in_ns $CLIENT timeout 1 socat -T1 - "TCP:$2:$3,connect-timeout=0.5" 2>/dev/null | grep -q hi ;;
    udp) echo hi | in_ns $CLIENT timeout 1 socat -T0.5 - "UDP:$2:$3" 2>/dev/null | grep -q hi ;;
    icmp) in_ns $CLIENT ping -c1 -W0.5 -q "$2" >/dev/null 2>&1 ;;
    esac
}
show() {
    printf '   %-8s %-10s %-10s\n' "" web web2
    for t in "tcp 80" "tcp 22" "udp 53" "icmp -"; do
        set -- $t
        r1=$(probe $1 10.1.1.2 $2 && echo OPEN || echo blocked)
        r2=$(probe $1 10.1.2.2 $2 && echo OPEN || echo blocked)
        printf '   %-8s %-10s %-10s\n' "$1 ${2/-/}" "$r1" "$r2"
    done
}

say "traffic from the client before anything is registered (not filtered)"
show

say "create group web, register both instances in it: everything to them is dropped"
ctl create-group web --description "web servers"
ctl register-instance i-web1 --interface tap1 --address 10.1.1.2 --group web
ctl register-instance i-web2 --interface tap2 --address 10.1.2.2 --group web
show

say "authorize tcp 80, tcp 22, udp 53 and icmp from the client's network"
ctl authorize web --protocol tcp --port 80 --cidr 10.9.0.0/24
ctl authorize web --protocol tcp --port 22 --cidr 0.0.0.0/0
ctl authorize web --protocol udp --port 53 --cidr 10.9.0.0/24
ctl authorize web --protocol icmp --cidr 10.9.0.2/32
ctl describe web
show

say "the group's chain in the kernel (one rule per permission, shared by both interfaces)"
in_ns $HOST nft -a list chain inet secgroupd grp_1_0

say "a long-lived connection: the client streams lines to web's port 80 and reads the echo"
(while :; do date +%s.%N; sleep 0.1; done) | in_ns $CLIENT socat -T30 - TCP:10.1.1.2:80 >"$TMP/stream.out" 2>/dev/null &
STREAM=$!
sleep 1
echo "   echoed lines so far: $(wc -l <"$TMP/stream.out")"

say "revoke tcp 80: exactly that rule goes, for both instances, before the answer"
ctl revoke web --protocol tcp --port 80 --cidr 10.9.0.0/24
before=$(wc -l <"$TMP/stream.out"); sleep 1; after=$(wc -l <"$TMP/stream.out")
echo "   established connection after the revoke: $before echoed lines, one second later $after (cut)"
kill $STREAM 2>/dev/null || true
show
in_ns $HOST nft -a list chain inet secgroupd grp_1_0

say "a revoke with values that were never granted changes nothing"
ctl revoke web --protocol tcp --port 80 --cidr 0.0.0.0/0 || true

say "stopping the daemon leaves enforcement exactly as it is"
kill "$DAEMON"; wait "$DAEMON" || true; DAEMON=
show
say "done: removing namespaces"
