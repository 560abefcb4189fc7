#!/usr/bin/env bash
# Installs Debian's SLURM (slurmctld, slurmd, slurm-client) and MUNGE for the SLURM test
# (test/slurm.test.ts), which starts its own one-node cluster in a temporary folder; nothing is
# configured or started here. Safe to run again: it does nothing when the programs are found.
# Without root or sudo (or apt-get) it only says what to run and exits 0; the SLURM test then
# skips with that reason (but fails under CI=true, where it must run).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

PROGRAMS=(slurmctld slurmd sbatch scancel squeue munged)
missing() {
  local p out=()
  for p in "${PROGRAMS[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null || out+=("$p")
  done
  echo "${out[*]}"
}

m=$(missing)
if [ -z "$m" ]; then
  echo "setup-slurm: found $(PATH="$PATH:/usr/sbin" slurmctld -V 2>/dev/null || echo slurm) and munge"; exit 0
fi
if [ "$(uname -s)" != Linux ] || ! command -v apt-get >/dev/null; then
  echo "setup-slurm: missing $m; install SLURM (slurmctld, slurmd, client commands) and MUNGE with your package manager"
  exit 0
fi
PACKAGES=(slurmctld slurmd slurm-client munge)
apt_root "setup-slurm: missing $m, and installing them" 'until then the SLURM test skips.' "${PACKAGES[@]}"
# The packages' own services must not start: the test runs its daemons with its own config,
# and a system slurmctld without /etc/slurm/slurm.conf would only fail. A policy-rc.d that
# answers 101 ("action forbidden") stops invoke-rc.d and deb-systemd-invoke from starting them.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
apt_install "${PACKAGES[@]}"
m=$(missing)
[ -z "$m" ] || { echo "setup-slurm: apt-get finished but $m is still missing" >&2; exit 1; }
echo "setup-slurm: installed $(dpkg-query -W -f='${Package} ${Version}\n' slurmctld munge | tr '\n' ' ')"
