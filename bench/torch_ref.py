"""PyTorch timings of the work `npm run bench` times, for comparison on the same machine.

  python3 bench/torch_ref.py [--json FILE] [--quick] [--device cuda|cpu]

Times with CUDA events on a GPU (wall clock on the CPU), median of repetitions after warm-up.
Entries: square matmuls, the VQ distance GEMM, the fused-equivalent nearest-code search
(cdist-style matmul + argmin), every conv / transposed conv of the seed model (forward, input
gradient, weight gradient) at batch 32 and 256, and a full training step (forward, backward,
Adam) of the seed VQ-VAE at batch 32 and 256.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "torch"))
from vqvae_ref import Model  # noqa: E402


def timer(device):
    if device == "cuda":
        def run(fn, reps, warmup):
            for _ in range(warmup):
                fn()
            torch.cuda.synchronize()
            times = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            return times
    else:
        def run(fn, reps, warmup):
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            return times
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores (off: exact f32 like ours)")
    args = ap.parse_args()
    dev = args.device
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    run = timer(dev)
    reps, warm = (3, 1) if args.quick else (20, 5)
    entries = []

    def add(name, family, flops, fn, r=reps):
        t = run(fn, r, warm)
        med = statistics.median(t)
        entries.append({"name": name, "family": family, "median_ms": med, "gflops": flops / med / 1e6 if flops else None})
        print(f"{name:60s} {med:10.3f} ms  {flops / med / 1e6 if flops else 0:10.1f} GFLOP/s", flush=True)

    g = torch.Generator(device="cpu").manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g).to(dev)
    sizes = [256, 512, 1024] if args.quick else [256, 512, 1024, 2048]
    for n in sizes:
        a, b = rnd(n, n), rnd(n, n)
        add(f"matmul {n}^3", "matmul", 2 * n ** 3, lambda: a @ b)
    z, e = rnd(65536, 64), rnd(512, 64)
    add("matmul vq-distance [65536x64]x[64x512]", "matmul", 2 * 65536 * 64 * 512, lambda: z @ e.t())
    for k in (512, 256, 128):
        ek = e[:k].contiguous()
        en = (ek ** 2).sum(1)
        add(f"vq nearest matmul+argmin N=65536 D=64 K={k}", "vq", 2 * 65536 * 64 * k, lambda: torch.argmin(en - 2 * z @ ek.t(), 1))

    layers = [  # name, transposed, cin, cout, k, stride, pad, input size
        ("enc.conv_1", False, 3, 64, 4, 2, 1, 64), ("enc.conv_2", False, 64, 128, 4, 2, 1, 32),
        ("enc.conv_3", False, 128, 128, 3, 1, 1, 16), ("res.conv3x3", False, 128, 32, 3, 1, 1, 16),
        ("res.conv1x1", False, 32, 128, 1, 1, 0, 16), ("pre_vq", False, 128, 64, 1, 1, 0, 16),
        ("dec.conv_1", False, 64, 128, 3, 1, 1, 16), ("dec.convT_1", True, 128, 64, 4, 2, 1, 16),
        ("dec.convT_2", True, 64, 3, 4, 2, 1, 32),
    ]
    for batch in (32, 256):
        for name, tr, cin, cout, k, s, p, hw in layers:
            x = rnd(batch, cin, hw, hw).requires_grad_(True)
            w = (rnd(cin, cout, k, k) if tr else rnd(cout, cin, k, k)).requires_grad_(True)
            op = (lambda x, w: F.conv_transpose2d(x, w, stride=s, padding=p)) if tr else (lambda x, w: F.conv2d(x, w, stride=s, padding=p))
            y = op(x, w)
            gy = torch.randn_like(y)
            macs = (x.numel() * cout * k * k) if tr else (y.numel() * cin * k * k)
            fam = "conv_transpose2d" if tr else "conv2d"
            add(f"{fam} {name} B={batch} forward", fam, 2 * macs, lambda: op(x, w), r=max(3, reps // 2))
            add(f"{fam} {name} B={batch} input grad", fam, 2 * macs, lambda: torch.autograd.grad(y, x, gy, retain_graph=True), r=max(3, reps // 2))
            add(f"{fam} {name} B={batch} weight grad", fam, 2 * macs, lambda: torch.autograd.grad(y, w, gy, retain_graph=True), r=max(3, reps // 2))

    for batch in (32, 256):
        torch.manual_seed(0)
        model = Model().to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = (torch.rand(batch, 3, 64, 64, generator=g) - 0.5).to(dev)

        def step():
            x_hat, ze, idx = model(x)
            # losses as SPEC section 2 (recompute e_k for the codebook/commitment terms)
            e = model._vq_vae._embedding.weight[idx].view(ze.shape[0], ze.shape[2], ze.shape[3], -1).permute(0, 3, 1, 2)
            loss = F.mse_loss(x_hat, x) + F.mse_loss(e, ze.detach()) + 1.25 * F.mse_loss(e.detach(), ze)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = run(step, max(3, reps // 2), warm)
        med = statistics.median(t)
        entries.append({"name": f"train_step seed model B={batch}", "family": "train_step", "median_ms": med, "images_per_s": batch / med * 1e3})
        print(f"{'train_step seed model B=' + str(batch):60s} {med:10.3f} ms  {batch / med * 1e3:10.1f} images/s", flush=True)

    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "tf32": args.tf32}
    print(json.dumps(info))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "entries": entries}, f, indent=1)


if __name__ == "__main__":
    main()
