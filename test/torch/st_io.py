"""safetensors files for the reference scripts: the `safetensors` package when installed, else
this reader and writer (numpy only), so the PyTorch checks need nothing beyond Debian's
python3-torch and python3-numpy.

Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
optional "__metadata__" of strings, then the raw little-endian row-major data.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    "F64": (np.float64, torch.float64),
    "F32": (np.float32, torch.float32),
    "I64": (np.int64, torch.int64),
    "I32": (np.int32, torch.int32),
    "U8": (np.uint8, torch.uint8),
}

try:
    from safetensors.torch import load_file as _pkg_load, save_file as _pkg_save
except ImportError:  # the package is optional
    _pkg_load = _pkg_save = None


def _load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if h["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: {name}: dtype {h['dtype']} is not supported here")
        a, b = h["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype=np.dtype(_DTYPES[h["dtype"]][0]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.reshape(h["shape"]).copy())
    return out


def _save(tensors, path, metadata=None):
    header = {}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        code = next(k for k, (_, td) in _DTYPES.items() if td == t.dtype)
        raw = t.detach().contiguous().cpu().numpy().astype(np.dtype(_DTYPES[code][0]).newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def load_file(path):
    return _pkg_load(path) if _pkg_load else _load(path)


def save_file(tensors, path, metadata=None):
    return _pkg_save(tensors, path, metadata=metadata) if _pkg_save else _save(tensors, path, metadata)
