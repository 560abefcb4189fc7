"""The seed's PyTorch VQ-VAE (the zalando notebook's module tree, ../shared/SPEC.md sections 1
and 7), used only by the optional interoperability tests.

  python3 vqvae_ref.py forward MODEL.safetensors INPUT.bin OUT.bin [K D H R BLOCKS]
      loads our checkpoint with load_state_dict(strict=True), runs the model on INPUT
      (float32 [B,3,64,64] raw little-endian) and writes x_hat then z_e (float32 raw).
  python3 vqvae_ref.py save MODEL.safetensors SEED [K D H R BLOCKS]
      writes a freshly initialised PyTorch model's state_dict (with a well-spread codebook).
"""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class Residual(nn.Module):
    def __init__(self, in_channels, num_hiddens, num_residual_hiddens):
        super().__init__()
        self._block = nn.Sequential(
            nn.ReLU(),  # not in-place: the skip carries x itself (SPEC section 1)
            nn.Conv2d(in_channels, num_residual_hiddens, 3, 1, 1, bias=False),
            nn.ReLU(),  # not in-place: the skip carries x itself (SPEC section 1)
            nn.Conv2d(num_residual_hiddens, num_hiddens, 1, 1, bias=False),
        )

    def forward(self, x):
        return x + self._block(x)


class ResidualStack(nn.Module):
    def __init__(self, in_channels, num_hiddens, num_residual_layers, num_residual_hiddens):
        super().__init__()
        self._layers = nn.ModuleList(
            [Residual(in_channels, num_hiddens, num_residual_hiddens) for _ in range(num_residual_layers)]
        )

    def forward(self, x):
        for layer in self._layers:
            x = layer(x)
        return F.relu(x)


class Encoder(nn.Module):
    def __init__(self, in_channels, h, blocks, r):
        super().__init__()
        self._conv_1 = nn.Conv2d(in_channels, h // 2, 4, 2, 1)
        self._conv_2 = nn.Conv2d(h // 2, h, 4, 2, 1)
        self._conv_3 = nn.Conv2d(h, h, 3, 1, 1)
        self._residual_stack = ResidualStack(h, h, blocks, r)

    def forward(self, x):
        x = F.relu(self._conv_1(x))
        x = F.relu(self._conv_2(x))
        x = self._conv_3(x)
        return self._residual_stack(x)


class Decoder(nn.Module):
    def __init__(self, in_channels, h, blocks, r):
        super().__init__()
        self._conv_1 = nn.Conv2d(in_channels, h, 3, 1, 1)
        self._residual_stack = ResidualStack(h, h, blocks, r)
        self._conv_trans_1 = nn.ConvTranspose2d(h, h // 2, 4, 2, 1)
        self._conv_trans_2 = nn.ConvTranspose2d(h // 2, 3, 4, 2, 1)

    def forward(self, x):
        x = self._conv_1(x)
        x = self._residual_stack(x)
        x = F.relu(self._conv_trans_1(x))
        return self._conv_trans_2(x)


class VectorQuantizer(nn.Module):
    def __init__(self, k, d, beta):
        super().__init__()
        self._embedding = nn.Embedding(k, d)
        self._embedding.weight.data.uniform_(-1 / k, 1 / k)
        self._commitment_cost = beta

    def forward(self, inputs):
        inputs = inputs.permute(0, 2, 3, 1).contiguous()
        flat = inputs.view(-1, self._embedding.weight.shape[1])
        distances = (flat ** 2).sum(1, keepdim=True) + (self._embedding.weight ** 2).sum(1) - 2 * flat @ self._embedding.weight.t()
        idx = torch.argmin(distances, dim=1)
        quantized = self._embedding.weight[idx].view(inputs.shape)
        quantized = inputs + (quantized - inputs).detach()
        return quantized.permute(0, 3, 1, 2).contiguous(), idx


class Model(nn.Module):
    def __init__(self, k=512, d=64, h=128, r=32, blocks=2, beta=1.25):
        super().__init__()
        self._encoder = Encoder(3, h, blocks, r)
        self._pre_vq_conv = nn.Conv2d(h, d, 1, 1)
        self._vq_vae = VectorQuantizer(k, d, beta)
        self._decoder = Decoder(d, h, blocks, r)

    def forward(self, x):
        z = self._pre_vq_conv(self._encoder(x))
        q, idx = self._vq_vae(z)
        return self._decoder(q), z, idx


def dims(argv):
    k, d, h, r, blocks = (int(v) for v in argv) if argv else (512, 64, 128, 32, 2)
    return dict(k=k, d=d, h=h, r=r, blocks=blocks)


if __name__ == "__main__":
    torch.set_num_threads(2)
    cmd = sys.argv[1]
    if cmd == "forward":
        path, inp, out = sys.argv[2:5]
        model = Model(**dims(sys.argv[5:]))
        model.load_state_dict(load_file(path), strict=True)
        x = torch.from_numpy(np.fromfile(inp, dtype="<f4")).view(-1, 3, 64, 64)
        with torch.no_grad():
            x_hat, z, idx = model(x)
        with open(out, "wb") as f:
            f.write(x_hat.numpy().astype("<f4").tobytes())
            f.write(z.numpy().astype("<f4").tobytes())
    elif cmd == "save":
        path, seed = sys.argv[2], int(sys.argv[3])
        torch.manual_seed(seed)
        model = Model(**dims(sys.argv[4:]))
        with torch.no_grad():
            model._vq_vae._embedding.weight.normal_()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    else:
        raise SystemExit(f"unknown command {cmd}")
