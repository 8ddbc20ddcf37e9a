#!/bin/bash
# tools/testnet/env.sh: the test network itself. Runs as PID 1 of private network, mount, IPC
# and PID namespaces; start it ONLY through tools/testnet/testnet.sh, which creates them.
#
#   env.sh             an interactive shell inside the network (make testnet)
#   env.sh CMD...      run CMD inside once every server answers; exit with its status
#   env.sh --serve     print "READY <state dir>" on stdout, serve until stdin closes (tests)
#
# Everything it creates lives in the namespaces and dies with them: the loopback addresses,
# the nftables counters, the bind mount over /etc/resolv.conf, the tmpfs with the servers'
# state and logs, and every server (the kernel kills the whole PID namespace when this
# script, its PID 1, exits). The host clock is never touched: chronyd runs with -x, ntpd
# without CAP_SYS_TIME, and only the client's software clock moves.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN=${TESTNET_RUN:?TESTNET_RUN: the state folder (a tmpfs is mounted on it)}
OPT=${TESTNET_OPT:-$ROOT/build/testnet/opt}
CHRONYD=$OPT/chrony/usr/sbin/chronyd
NTPD=$OPT/ntpsec/usr/sbin/ntpd
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}
PY=$ROOT/.venv/bin/python3
[ -x "$PY" ] || PY=python3
T0=$(date +%s%N)

# --- safety: refuse to run in the host's namespaces. A fresh network namespace has no global
#     address and no default route (fallback tunnel devices may exist: don't insist on "lo only").
if [ "$$" != 1 ] || [ -n "$(ip -o addr show scope global)" ] || [ -n "$(ip route show default)" ]; then
  echo "testnet: not PID 1 of a fresh network namespace: refusing (use tools/testnet/testnet.sh)" >&2
  exit 2
fi

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' INT TERM HUP    # as PID 1 of a PID namespace, bash ignores untrapped signals

# --- network: lo up, one /32 per service address (ntpd binds only configured addresses, and
#     with a /32 the kernel uses source = destination, which ntpsec's restrict lines rely on)
ip link set lo up
for i in 2 3 4 5 6 7 8 9; do ip addr add "127.0.0.$i/32" dev lo; done

# --- state: a tmpfs seen only in this mount namespace (the host sees an empty folder)
mount -t tmpfs -o mode=0755,size=64m testnet "$RUN"
mkdir -p "$RUN"/{dnsmasq,ntpsec,chrony}
sed "s#@ADDR@#127.0.0.2#; s#@DIR@#$RUN/chrony#g" "$HERE/chrony.conf.in" > "$RUN/chrony.conf"
sed "s#@RUN@#$RUN#g" "$HERE/ntpsec.conf.in" > "$RUN/ntpsec.conf"
sed "s#@RUN@#$RUN#g" "$HERE/dnsmasq.conf.in" > "$RUN/dnsmasq.conf"
cp "$HERE/dns_hosts.in" "$RUN/dnsmasq/hosts"
cp "$HERE/resolv.conf" "$RUN/resolv.conf"

# --- the private resolver: only this mount namespace sees it (unshare makes mounts private)
mount --bind "$RUN/resolv.conf" /etc/resolv.conf

# --- per-destination packet counters (this network namespace's own nftables)
nft -f "$HERE/counters.nft"

# --- servers, all children of this script
start() {  # start NAME CMD...: logs to $RUN/NAME.log
  local name=$1; shift
  "$@" > "$RUN/$name.log" 2>&1 &
  PIDS+=($!)
}
start dnsmasq "$DNSMASQ" --keep-in-foreground --conf-file="$RUN/dnsmasq.conf"
start chronyd "$CHRONYD" -d -x -u root -f "$RUN/chrony.conf"
start shm_feeder "$PY" "$HERE/shm_refclock_feeder.py"
start ntpd setpriv --bounding-set -sys_time --inh-caps -sys_time \
  "$NTPD" -n -c "$RUN/ntpsec.conf" -p "$RUN/ntpsec/ntpd.pid" -l "$RUN/ntpsec/ntpd.log"
start refserver-6 "$PY" "$ROOT/tools/refserver.py" --host 127.0.0.6 --port 123 --offset 3600
start refserver-7 "$PY" "$ROOT/tools/refserver.py" --host 127.0.0.7 --port 123 --mode kod-rate-zero
start dns-servfail "$PY" "$HERE/fake_dns.py" --port 5353 --rcode 2
start dns-silent "$PY" "$HERE/fake_dns.py" --port 5354 --blackhole
printf '%s\n' "${PIDS[@]}" > "$RUN/server.pids"

if ! "$PY" "$HERE/wait_ready.py" --timeout "${TESTNET_READY_TIMEOUT:-60}" \
    --max-root-distance "${TESTNET_MAX_ROOT_DISTANCE:-1.0}"; then
  echo "testnet: the servers did not come up; their logs:" >&2
  tail -n 15 "$RUN"/*.log "$RUN"/ntpsec/ntpd.log >&2 || true
  exit 3
fi
# the readiness probes went to .2 .4 .6 .8 and 127.0.0.1:53: the tests start from zero
nft reset counters table ip testnet > /dev/null
: > "$RUN/dnsmasq/dnsmasq.log"
echo "testnet: all servers answering after $(( ($(date +%s%N) - T0) / 1000000 )) ms" >&2

if [ "${1:-}" = --serve ]; then
  echo "READY $RUN"
  while read -r _; do :; done || true     # until the harness closes our stdin
  exit 0
fi
if [ $# -gt 0 ]; then
  set +e
  "$@"
  exit $?
fi
cat >&2 <<EOF

  Test network (private namespaces; the host is untouched). Servers:
    127.0.0.1:53  dnsmasq: zone acme.pool.ntp.org (hosts: $RUN/dnsmasq/hosts, SIGHUP to reload)
    127.0.0.2     chronyd, stratum 8            127.0.0.3  ntpsec, rate limited (KoD RATE)
    127.0.0.4     ntpsec, stratum 1             127.0.0.5  dead (nothing listens)
    127.0.0.6     refserver, +3600 s (a liar)   127.0.0.7  refserver, KoD RATE, zero timestamps
    127.0.0.8     ntpsec, stratum 1             127.0.0.9  DNS stubs (SERVFAIL, silent)
  Try:  tools/sntp query 0.acme.pool.ntp.org
        tools/sntp sync --zone acme --state /tmp/board.json --json
        nft list counters table ip testnet        tail $RUN/*.log
  Leave with exit (everything stops).

EOF
set +e
cd "$ROOT"
PS1='(testnet) \w\$ ' bash --norc -i
exit 0
