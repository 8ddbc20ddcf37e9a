#!/bin/bash
# tools/testnet/install.sh: install what the test network needs (root, Debian 12).
# Idempotent: when everything is there it only checks and exits (well under a second).
#
#   apt:      dnsmasq-base nftables, and the shared libraries ntpd and chronyd link against
#   unpacked: ntpsec (ntpd) and chrony (chronyd) from their .debs (`apt-get download` +
#             `dpkg-deb -x`) into $TESTNET_OPT (default: build/testnet/opt in the repo).
#
# Why ntpsec and chrony are not installed as packages: both "Provide/Conflict: time-daemon",
# so apt cannot have both, and installing either would REMOVE the host's time daemon
# (systemd-timesyncd on Debian 12) and install a service meant to discipline the host clock.
# Unpacked into a private folder they are plain programs that the test network runs inside
# its namespaces (chronyd -x, ntpd without CAP_SYS_TIME); the host is left as it was.
#
# A policy-rc.d that exits 101 is in place while apt runs, so no package starts a daemon on
# the host; the one that was there before (if any) is put back afterwards.
#
# Exit status: 0 ready; 3 cannot install (not root, no apt, download failed): the last
# line on stderr says why, in one line.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OPT=${TESTNET_OPT:-$ROOT/build/testnet/opt}
APT_PKGS=(dnsmasq-base nftables util-linux iproute2
          libbsd0 libcap2 libssl3 libedit2 libgnutls30 libnettle8 libseccomp2)
UNPACK_PKGS=(ntpsec chrony)
declare -A UNPACK_BIN=([ntpsec]=usr/sbin/ntpd [chrony]=usr/sbin/chronyd)

cannot() { echo "testnet install: $*" >&2; exit 3; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }

missing_apt=()
for p in "${APT_PKGS[@]}"; do installed "$p" || missing_apt+=("$p"); done
missing_unpack=()
for p in "${UNPACK_PKGS[@]}"; do [ -x "$OPT/$p/${UNPACK_BIN[$p]}" ] || missing_unpack+=("$p"); done
have_tools() { for t in nsenter unshare setpriv ip; do command -v "$t" >/dev/null || return 1; done; }
if [ ${#missing_apt[@]} -eq 0 ] && [ ${#missing_unpack[@]} -eq 0 ] && have_tools; then
  exit 0
fi

[ "$(id -u)" = 0 ] || cannot "not root: cannot install ${missing_apt[*]} ${missing_unpack[*]}"
command -v apt-get >/dev/null || cannot "no apt-get: cannot install ${missing_apt[*]} ${missing_unpack[*]}"
echo "testnet install: ${missing_apt[*]} ${missing_unpack[*]}" >&2
T0=$(date +%s%N)

APT=(apt-get -q -o DPkg::Lock::Timeout=300)
updated=0
apt_update() { [ $updated = 1 ] || { "${APT[@]}" update -qq >&2 || true; updated=1; }; }

if [ ${#missing_apt[@]} -gt 0 ]; then
  # no daemon may start on the host during the install
  POLICY=/usr/sbin/policy-rc.d
  SAVED=$POLICY.testnet-saved.$$
  restore_policy() {
    if [ -e "$SAVED" ]; then mv -f "$SAVED" "$POLICY"; else rm -f "$POLICY"; fi
  }
  if [ -e "$POLICY" ]; then cp -p "$POLICY" "$SAVED"; fi
  trap restore_policy EXIT
  printf '#!/bin/sh\n# tools/testnet/install.sh: no daemon starts while it installs\nexit 101\n' \
    > "$POLICY"
  chmod 755 "$POLICY"
  if ! "${APT[@]}" install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null; then
    apt_update
    "${APT[@]}" install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null \
      || cannot "apt-get install ${missing_apt[*]} failed"
  fi
  restore_policy
  trap - EXIT
fi

if [ ${#missing_unpack[@]} -gt 0 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chown _apt "$tmp" 2>/dev/null || true        # apt downloads as _apt
  if ! (cd "$tmp" && "${APT[@]}" download -qq "${missing_unpack[@]}" >&2); then
    apt_update
    (cd "$tmp" && "${APT[@]}" download -qq "${missing_unpack[@]}" >&2) \
      || cannot "apt-get download ${missing_unpack[*]} failed"
  fi
  mkdir -p "$OPT"
  for p in "${missing_unpack[@]}"; do
    rm -rf "$OPT/$p.new" "$OPT/$p"
    dpkg-deb -x "$tmp/${p}"_*.deb "$OPT/$p.new"
    mv "$OPT/$p.new" "$OPT/$p"           # a complete tree or none (the check above)
  done
fi

have_tools || cannot "nsenter, unshare, setpriv or ip still missing"
for p in "${UNPACK_PKGS[@]}"; do
  bin=$OPT/$p/${UNPACK_BIN[$p]}
  if ldd "$bin" | grep -q 'not found'; then cannot "$bin: $(ldd "$bin" | grep 'not found' | head -1)"; fi
done
echo "testnet install: done in $(( ($(date +%s%N) - T0) / 1000000 )) ms" >&2
