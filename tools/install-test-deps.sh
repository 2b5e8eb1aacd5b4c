#!/usr/bin/env bash
# Debian packages the tests and benchmarks use as real peers. Idempotent; needs root.
set -euo pipefail
PKGS=(
  nftables libnftables1 iproute2 util-linux procps
  dnsutils knot-dnsutils dnsmasq-base unbound dnsperf
  microsocks dante-server tinyproxy redsocks
  curl socat openssl iperf3 hyperfine
  gcc-mingw-w64-x86-64 python3-scapy
  wine64
)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "test dependencies present: ${PKGS[*]}"
# Windows build of Node, koffi's win32 binary and a Wine prefix for test/windows/wine.test.ts.
bash "$(dirname "$0")/windows/wine-setup.sh"
