#!/usr/bin/env bash
# Installs Debian's PyTorch (python3-torch, 1.13 on Debian 12) and numpy for the PyTorch checks
# of the test suite (test/torch/python.ts finds them for /usr/bin/python3): the references the
# engine, the checkpoints and the side-by-side training are compared against. The safetensors
# Python package is not needed (test/torch/st_io.py reads and writes the format itself).
# Safe to run again: it does nothing when torch imports. Without root or sudo it only says what
# to run and exits 0; the checks then skip with that reason (but fail under CI=true).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

have() { /usr/bin/python3 -c 'import torch, numpy; print(torch.__version__, numpy.__version__)' 2>/dev/null; }

if v=$(have); then
  echo "setup-torch: found torch and numpy for /usr/bin/python3 ($v)"; exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-torch: no apt-get here; install torch and numpy for python3 (or set VQ_TORCH_PYTHON to a Python that has them)"
  exit 0
fi
apt_root 'setup-torch: installing torch' 'until then the PyTorch checks skip.' python3-torch python3-numpy
# Recommends (libtorch-dev, build-essential, ...) are for building extensions, not needed here.
apt_install python3-torch python3-numpy
v=$(have) || { echo "setup-torch: python3-torch installed but 'import torch' fails" >&2; exit 1; }
echo "setup-torch: installed torch and numpy for /usr/bin/python3 ($v)"
