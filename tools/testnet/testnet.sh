#!/bin/bash
# tools/testnet/testnet.sh: the real-server test network (root, Debian 12).
#
#   tools/testnet/testnet.sh            an interactive shell inside it (make testnet)
#   tools/testnet/testnet.sh CMD...     run CMD inside it, then tear it down; CMD's status
#   tools/testnet/testnet.sh --serve    for the tests: "READY <state dir>", serve until stdin
#                                       closes (host_tests/testnet_fixture.py)
#   tools/testnet/testnet.sh --check    only install what is missing (install.sh) and exit
#
# dnsmasq, chronyd, ntpsec's ntpd and two tools/refserver.py run on 127.0.0.1-.9 inside new
# network, mount, IPC and PID namespaces (env.sh; the address plan is in dns_hosts.in).
# --kill-child and the PID namespace: whatever happens to this command, the kernel kills every
# server with it; addresses, mounts and nftables rules exist only in the namespaces. Nothing
# is left on the host but the installed packages and build/testnet/.
#
# Exit status 3 (with one line on stderr saying why): cannot run here (not root, packages
# cannot be installed, namespaces refused).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export TESTNET_OPT=${TESTNET_OPT:-$ROOT/build/testnet/opt}
export TESTNET_RUN=${TESTNET_RUN:-$ROOT/build/testnet/run}

if [ "$(id -u)" != 0 ]; then
  echo "testnet: needs root (network namespaces, mounts, package installs)" >&2
  exit 3
fi
"$HERE/install.sh" || exit 3
[ "${1:-}" = --check ] && exit 0
# the mount point of the namespace's private tmpfs: an empty folder on the host
mkdir -p "$TESTNET_RUN"
if ! unshare --net --mount --ipc --pid --fork --kill-child --mount-proc true 2>/dev/null; then
  echo "testnet: unshare cannot create network/mount/IPC/PID namespaces here" >&2
  exit 3
fi
exec unshare --net --mount --ipc --pid --fork --kill-child --mount-proc \
  bash "$HERE/env.sh" "$@"
