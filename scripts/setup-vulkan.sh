#!/usr/bin/env bash
# Installs a Vulkan driver WebGPU (Dawn) can use on a machine with no GPU: Mesa's lavapipe
# (a CPU Vulkan driver) and the Vulkan loader. Debian 12's own Mesa 22 lacks a Vulkan feature
# Dawn needs, so on bookworm the driver comes from bookworm-backports (Mesa 25.x).
# Safe to run again: it does nothing when a Vulkan ICD is already installed.
set -euo pipefail

# macOS and Windows bring their own WebGPU backends (Metal, D3D12): nothing to install.
[ "$(uname -s)" = Linux ] || exit 0

# A usable driver: the loader plus an ICD, and not Debian 12's Mesa 22 lavapipe (too old for Dawn).
# (ldconfig's output is captured first: `ldconfig -p | grep -q` fails at random under pipefail,
# with SIGPIPE, when grep exits before ldconfig has written everything. Non-root users on
# Debian have no /sbin on PATH.)
have_icd() {
  local ldconfig libs
  ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
  libs=$("$ldconfig" -p 2>/dev/null) || return 1
  grep -q 'libvulkan.so.1 ' <<<"$libs" || return 1
  compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null || return 1
  local mesa; mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  case "$mesa" in 22.*|21.*|20.*) return 1 ;; esac
}
if have_icd && [ "${FORCE:-0}" != 1 ]; then
  echo "setup-vulkan: a Vulkan driver is already installed"; exit 0
fi
# `env` carries DEBIAN_FRONTEND through sudo, which would otherwise reset the environment.
if [ "$(id -u)" != 0 ]; then SUDO='sudo env DEBIAN_FRONTEND=noninteractive'; else SUDO=; fi
if ! command -v apt-get >/dev/null; then
  echo "setup-vulkan: no apt-get here; install Mesa's Vulkan drivers (lavapipe) and the Vulkan loader with your package manager" >&2
  exit 1
fi
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  list=/etc/apt/sources.list.d/bookworm-backports.list
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee $list >/dev/null
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
else
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
have_icd || { echo "setup-vulkan: install finished but no Vulkan ICD was found" >&2; exit 1; }
echo "setup-vulkan: installed $(dpkg-query -W -f='${Package} ${Version}\n' mesa-vulkan-drivers)"
