"""The seed's PyTorch VQ-VAE under both module trees that name its tensors (../shared/SPEC.md
sections 1 and 7), used by the PyTorch checks of the test suite:
  seed     the seed repository's `Model` (vancheeswaran/VQ-VAE), restated: encoder.conv1,
           encoder.residual.layers.{i}.res_block.{1,3}, pre_vq_conv, vq_vae.embedding,
           decoder.conv1, decoder.residual..., decoder.trans_conv1/2;
  zalando  the zalando notebook's: _encoder._conv_1, ..._residual_stack._layers.{i}._block.{1,3},
           _pre_vq_conv, _vq_vae._embedding, _decoder._conv_trans_1/2.
Both compute the same function; a state_dict picks its tree by its names.

  python3 vqvae_ref.py forward MODEL INPUT OUT [K D H R BLOCKS]
      loads MODEL (.safetensors, or a torch.save .pt) with load_state_dict(strict=True), runs
      it on INPUT (float32 [B,3,64,64] raw little-endian) and writes x_hat then z_e (float32).
  python3 vqvae_ref.py save MODEL SEED [K D H R BLOCKS] [--names seed|zalando]
      writes a freshly initialised model's state_dict (with a well-spread codebook); a .pt
      path is written with torch.save, anything else as safetensors. Default names: zalando.
  python3 vqvae_ref.py train MODEL BATCHES OUT STEPS LR BETA [K D H R BLOCKS]
      the seed's training loop from MODEL's weights: Adam over every parameter, one batch of
      BATCHES (float32 [STEPS,B,3,64,64]) per step; writes each step's losses and codes (JSON).
  python3 vqvae_ref.py pt-files DIR [K D H R BLOCKS]
      torch.save files of one seeded model for the .pt reader's checks: its state_dict, a
      training checkpoint dict, a float16 copy, a pickled nn.Module, a legacy-format file, and
      the reconstruction of one fixed image (fixed_input(1)) as DIR/xhat.f32, and DIR/version.
safetensors files are read and written by st_io.py when the safetensors package is absent.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import load_file, save_file  # noqa: E402

# ---- the zalando notebook's module tree


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


def quantize(z, weight, beta):
    """Nearest code per vector (ties: lowest index), straight-through; the seed's loss terms."""
    inputs = z.permute(0, 2, 3, 1).contiguous()
    flat = inputs.view(-1, weight.shape[1])
    distances = (flat**2).sum(1, keepdim=True) + (weight**2).sum(1) - 2 * flat @ weight.t()
    idx = torch.argmin(distances, dim=1)
    e = weight[idx].view(inputs.shape)
    codebook_loss = F.mse_loss(e, inputs.detach())
    commitment_loss = beta * F.mse_loss(e.detach(), inputs)
    q = inputs + (e - inputs).detach()
    return q.permute(0, 3, 1, 2).contiguous(), idx, codebook_loss, commitment_loss


class VectorQuantizer(nn.Module):
    def __init__(self, k, d, beta):
        super().__init__()
        self._embedding = nn.Embedding(k, d)
        self._embedding.weight.data.uniform_(-1 / k, 1 / k)
        self._commitment_cost = beta

    def forward(self, z):
        return quantize(z, self._embedding.weight, self._commitment_cost)


class Model(nn.Module):
    def __init__(self, k=512, d=64, h=128, r=32, blocks=2, beta=1.25):
        super().__init__()
        self._encoder = Encoder(3, h, blocks, r)
        self._pre_vq_conv = nn.Conv2d(h, d, 1, 1)
        self._vq_vae = VectorQuantizer(k, d, beta)
        self._decoder = Decoder(d, h, blocks, r)

    def codebook(self):
        return self._vq_vae._embedding

    def forward(self, x):
        z = self._pre_vq_conv(self._encoder(x))
        q, idx, cb, cm = self._vq_vae(z)
        return self._decoder(q), z, idx, cb, cm


# ---- the seed repository's module tree (same layers and order, its attribute names)


class SeedResidualBlock(nn.Module):
    def __init__(self, channels, hidden, res_hidden):
        super().__init__()
        self.res_block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_hidden, 3, 1, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(res_hidden, hidden, 1, 1, bias=False),
        )

    def forward(self, x):
        return x + self.res_block(x)


class SeedResidual(nn.Module):
    def __init__(self, channels, hidden, blocks, res_hidden):
        super().__init__()
        self.layers = nn.ModuleList([SeedResidualBlock(channels, hidden, res_hidden) for _ in range(blocks)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return F.relu(x)


class SeedEncoder(nn.Module):
    def __init__(self, in_channels, h, blocks, r):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, h // 2, 4, 2, 1)
        self.conv2 = nn.Conv2d(h // 2, h, 4, 2, 1)
        self.conv3 = nn.Conv2d(h, h, 3, 1, 1)
        self.residual = SeedResidual(h, h, blocks, r)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.residual(self.conv3(x))


class SeedDecoder(nn.Module):
    def __init__(self, in_channels, h, blocks, r):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, h, 3, 1, 1)
        self.residual = SeedResidual(h, h, blocks, r)
        self.trans_conv1 = nn.ConvTranspose2d(h, h // 2, 4, 2, 1)
        self.trans_conv2 = nn.ConvTranspose2d(h // 2, 3, 4, 2, 1)

    def forward(self, x):
        x = self.residual(self.conv1(x))
        return self.trans_conv2(F.relu(self.trans_conv1(x)))


class SeedVectorQuantizer(nn.Module):
    def __init__(self, k, d, beta):
        super().__init__()
        self.embedding = nn.Embedding(k, d)
        self.embedding.weight.data.uniform_(-1 / k, 1 / k)
        self.commitment_cost = beta

    def forward(self, z):
        return quantize(z, self.embedding.weight, self.commitment_cost)


class SeedModel(nn.Module):
    def __init__(self, k=512, d=64, h=128, r=32, blocks=2, beta=1.25):
        super().__init__()
        self.encoder = SeedEncoder(3, h, blocks, r)
        self.pre_vq_conv = nn.Conv2d(h, d, 1, 1)
        self.vq_vae = SeedVectorQuantizer(k, d, beta)
        self.decoder = SeedDecoder(d, h, blocks, r)

    def codebook(self):
        return self.vq_vae.embedding

    def forward(self, x):
        z = self.pre_vq_conv(self.encoder(x))
        q, idx, cb, cm = self.vq_vae(z)
        return self.decoder(q), z, idx, cb, cm


# ---- helpers


def dims(argv):
    k, d, h, r, blocks = (int(v) for v in argv) if argv else (512, 64, 128, 32, 2)
    return dict(k=k, d=d, h=h, r=r, blocks=blocks)


def build(names, beta=1.25, **kw):
    return (SeedModel if names == "seed" else Model)(beta=beta, **kw)


def names_of(state):
    return "seed" if "vq_vae.embedding.weight" in state else "zalando"


def load_state(path):
    if path.endswith((".pt", ".pth")):
        return torch.load(path, map_location="cpu")
    return load_file(path)


def save_state(state, path):
    if path.endswith((".pt", ".pth")):
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)


def fixed_input(n=2):
    """Images from integer arithmetic alone, so every language builds them exactly."""
    i = np.arange(n * 3 * 64 * 64, dtype=np.int64)
    return torch.from_numpy((((i * 7919) % 1000) / 1000.0 - 0.5).astype(np.float32)).view(n, 3, 64, 64)


def options(argv):
    """Positional arguments and --name value pairs."""
    pos, opts = [], {}
    it = iter(argv)
    for a in it:
        if a.startswith("--"):
            opts[a[2:]] = next(it)
        else:
            pos.append(a)
    return pos, opts


def seeded_model(names, seed, kw):
    torch.manual_seed(seed)
    model = build(names, **kw)
    with torch.no_grad():
        model.codebook().weight.normal_()  # well-spread codes: no near-ties in the argmin
    return model


if __name__ == "__main__":
    torch.set_num_threads(2)
    pos, opts = options(sys.argv[1:])
    cmd = pos[0]
    if cmd == "forward":
        path, inp, out = pos[1:4]
        state = load_state(path)
        model = build(names_of(state), **dims(pos[4:]))
        model.load_state_dict(state, strict=True)
        x = torch.from_numpy(np.fromfile(inp, dtype="<f4")).view(-1, 3, 64, 64)
        with torch.no_grad():
            x_hat, z, idx, _, _ = model(x)
        with open(out, "wb") as f:
            f.write(x_hat.numpy().astype("<f4").tobytes())
            f.write(z.numpy().astype("<f4").tobytes())
    elif cmd == "save":
        path, seed = pos[1], int(pos[2])
        model = seeded_model(opts.get("names", "zalando"), seed, dims(pos[3:]))
        save_state(model.state_dict(), path)
    elif cmd == "train":
        path, batches, out, steps, lr, beta = pos[1], pos[2], pos[3], int(pos[4]), float(pos[5]), float(pos[6])
        state = load_state(path)
        model = build(names_of(state), beta=beta, **dims(pos[7:]))
        model.load_state_dict(state, strict=True)
        x = torch.from_numpy(np.fromfile(batches, dtype="<f4")).view(steps, -1, 3, 64, 64)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        rows = []
        for s in range(steps):
            x_hat, z, idx, cb, cm = model(x[s])
            recon = F.mse_loss(x_hat, x[s])
            loss = recon + cb + cm
            opt.zero_grad()
            loss.backward()
            opt.step()
            rows.append({"loss": loss.item(), "recon": recon.item(), "codebook": cb.item(), "commitment": cm.item(), "codes": idx.tolist()})
        with open(out, "w") as f:
            json.dump({"torch": torch.__version__, "steps": rows}, f)
    elif cmd == "pt-files":
        d = pos[1]
        kw = dims(pos[2:])
        model = seeded_model("seed", 7, kw)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model(fixed_input(1))[0].square().mean().backward()
        opt.step()  # a real optimizer state for the training checkpoint
        with torch.no_grad():
            x_hat = model(fixed_input(1))[0]
        torch.save(model.state_dict(), os.path.join(d, "state_dict.pt"))
        torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(), "loss": 0.5}, os.path.join(d, "checkpoint.pt"))
        torch.save({k: v.half() for k, v in model.state_dict().items()}, os.path.join(d, "half.pt"))
        torch.save(model, os.path.join(d, "module.pt"))
        torch.save(model.state_dict(), os.path.join(d, "legacy.pt"), _use_new_zipfile_serialization=False)
        x_hat.numpy().astype("<f4").tofile(os.path.join(d, "xhat.f32"))
        with open(os.path.join(d, "version"), "w") as f:
            f.write(torch.__version__)
    else:
        raise SystemExit(f"unknown command {cmd}")
