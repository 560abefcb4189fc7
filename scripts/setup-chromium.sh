#!/usr/bin/env bash
# Installs a Chromium for the browser tests (test/browser.test.ts), which drive it headless
# through playwright-core with WebGPU on SwiftShader (Chromium's own CPU Vulkan device).
# Playwright's browser downloads are not used: on Linux this takes Debian's `chromium` package.
# Safe to run again: it does nothing when a Chromium is found. Without root or sudo it only
# says what to run and exits 0; the browser tests then skip with that reason (but fail under
# CI=true, where they must run).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# The same search as findChromium() in scripts/browser.ts: CHROMIUM_PATH, /usr/bin/chromium,
# then chromium, chromium-browser or google-chrome on PATH.
find_chromium() {
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    [ -f "$CHROMIUM_PATH" ] && [ -x "$CHROMIUM_PATH" ] && echo "$CHROMIUM_PATH"
    return
  fi
  if [ -x /usr/bin/chromium ]; then echo /usr/bin/chromium; return; fi
  local name
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" && return
  done
  return 1
}

# Debian's launcher script prints a shell warning on stderr for --version; keep only the version.
version() { "$1" --version 2>/dev/null || echo 'version unknown'; }

if path=$(find_chromium); then
  echo "setup-chromium: found $path ($(version "$path"))"; exit 0
fi
if [ -n "${CHROMIUM_PATH:-}" ]; then
  # An explicit choice is not replaced by another browser (findChromium does the same).
  echo "setup-chromium: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file; fix or unset it" >&2
  exit 0
fi

if [ "$(uname -s)" != Linux ]; then
  echo "setup-chromium: no Chromium found; install Chrome or Chromium and set CHROMIUM_PATH to its binary"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-chromium: no apt-get here; install Chromium with your package manager (or set CHROMIUM_PATH)"
  exit 0
fi
apt_root 'setup-chromium: no Chromium found, and installing one' \
  '(or set CHROMIUM_PATH to a Chrome/Chromium binary); until then the browser tests skip.' chromium
# Recommends (fonts, sandbox helper) are not needed headless; SwiftShader is in chromium-common.
apt_install chromium
path=$(find_chromium) || { echo "setup-chromium: apt-get installed chromium but no Chromium binary was found" >&2; exit 1; }
echo "setup-chromium: installed $path ($(version "$path"))"
