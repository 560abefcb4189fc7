"""PyTorch timings of the work `npm run bench` times, for comparison on the same machine.

  python3 bench/torch_ref.py [--json FILE] [--quick] [--device cuda|cpu] [--only-step] [--tiny]
                             [--arms strict,default,tuned] [--batches 32,256] [--steps N]

Training step (the headline): the seed VQ-VAE's full step (forward, the three loss terms,
backward, Adam) in three arms, each batch in a fresh Python process of its own (so the `default`
arm really runs PyTorch's untouched defaults, each arm's memory statistics and compile caches
start empty, and a crashing arm loses no other arm's numbers):
  strict   f32 with TF32 off for cuDNN convolutions and cuBLAS matmuls (exact f32, as ours)
  default  PyTorch's defaults, untouched (cuDNN convolutions use TF32 where the card has it)
  tuned    bf16 autocast, channels_last model and input, cudnn.benchmark, fused Adam on CUDA, and
           torch.compile(mode=--compile-mode) where it works: a failure is recorded and the arm
           runs eager
Each arm and batch: warm-up steps, one step between reset_peak_memory_stats and
max_memory_allocated (peak bytes), then --rounds rounds of --steps back-to-back steps with one
sync at the end: wall ms per step (median over rounds) and images/s are the headline; GPU ms per
step beside it is the median of CUDA-event intervals between consecutive steps of those rounds.
Without CUDA the arms run on the CPU (TF32 does not apply; tuned uses CPU bf16 autocast) and
report no GPU time or peak bytes; an arm that cannot run is reported as skipped with the reason.

Ops (unless --only-step): square matmuls, the VQ distance GEMM, the nearest-code search (matmul
+ argmin), every conv / transposed conv of the seed model (forward, input gradient, weight
gradient) at batch 32 and 256: CUDA events per repetition (wall clock on the CPU), median after
warm-up, TF32 per --tf32.

JSON (--json, rewritten after each arm so a later failure or timeout keeps what was measured):
  {"schema": "torch_ref/2",
   "info": {torch, python, device, device_kind, cuda, cudnn, steps, rounds, warmup, compile_mode,
            ops_tf32, "arms": {ARM: {description, tf32, autocast, memory_format, optimizer,
            cudnn_benchmark, compile}}},
   "train_step": [{arm, batch, status: "ok"|"skipped"|"failed", reason, steps, rounds, warmup,
                   wall_ms, wall_ms_rounds, images_per_s, gpu_ms, peak_bytes, reserved_bytes,
                   settings: {flag: value as read in that process}, compile: {mode, status, reason}}],
   "entries": [{name, family, median_ms, gflops}]}
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "torch"))
from vqvae_ref import Model  # noqa: E402

SCHEMA = "torch_ref/2"

# What each arm sets (the worker applies it; `describe_arms` reports it).
ARMS = {
    "strict": {
        "description": "f32, TF32 off for cuDNN convolutions and cuBLAS matmuls (exact f32, as ours)",
        "tf32": "off", "autocast": None, "memory_format": "contiguous", "cudnn_benchmark": False, "compile": False,
    },
    "default": {
        "description": "PyTorch's defaults, untouched (cuDNN convolutions use TF32 where the card has it; matmuls per torch's default)",
        "tf32": "torch default", "autocast": None, "memory_format": "contiguous", "cudnn_benchmark": False, "compile": False,
    },
    "tuned": {
        "description": "bf16 autocast, channels_last model and input, cudnn.benchmark, fused Adam on CUDA, torch.compile where it works",
        "tf32": "torch default", "autocast": "bfloat16", "memory_format": "channels_last", "cudnn_benchmark": True, "compile": True,
    },
}


def describe_arms(device, compile_mode):
    out = {}
    for name, a in ARMS.items():
        d = {k: v for k, v in a.items()}
        d["optimizer"] = "Adam(lr=1e-3, fused=True)" if name == "tuned" and device == "cuda" else "Adam(lr=1e-3)"
        d["compile"] = compile_mode if a["compile"] and compile_mode != "off" else None
        if device != "cuda":
            d["tf32"] = "n/a (CPU)"
            d["cudnn_benchmark"] = None
        out[name] = d
    return out


def has(obj, name):
    """hasattr that also treats torch 1.13's AssertionError for an unknown flag as absent."""
    try:
        getattr(obj, name)
        return True
    except Exception:  # noqa: BLE001
        return False


def set_tf32(enabled):
    """TF32 for convolutions and matmuls, through the API this torch has (2.9+: fp32_precision;
    mixing the old and new setters makes later reads raise, so only one is used)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if has(matmul, "fp32_precision") and has(cudnn, "conv") and has(cudnn.conv, "fp32_precision"):
        matmul.fp32_precision = cudnn.conv.fp32_precision = "tf32" if enabled else "ieee"
    else:
        matmul.allow_tf32 = cudnn.allow_tf32 = enabled


def precision_settings():
    """The precision flags as this process reads them (absent where this torch lacks one, or
    where reading it raises)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    getters = {
        "cudnn.allow_tf32": lambda: cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": lambda: matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision,
        "cudnn.conv.fp32_precision": lambda: cudnn.conv.fp32_precision,
        "cuda.matmul.fp32_precision": lambda: matmul.fp32_precision,
        "cudnn.benchmark": lambda: cudnn.benchmark,
    }
    out = {}
    for key, get in getters.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[key] = get()
        except Exception:  # noqa: BLE001 - a flag this version does not have
            pass
    return out


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def loss_of(model, x):
    """The seed's loss (SPEC section 2): reconstruction MSE + codebook + beta * commitment."""
    x_hat, _z, _idx, codebook, commitment = model(x)
    return F.mse_loss(x_hat, x) + codebook + commitment


def one_line(e):
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return (text[0] if text else type(e).__name__)[:400]


def run_arm(arm, batch, device, steps, rounds, warmup, compile_mode):
    """One arm at one batch in this process: the result dict of the JSON's train_step list."""
    base = {"arm": arm, "batch": batch}
    a = ARMS[arm]
    bf16 = a["autocast"] == "bfloat16"
    if bf16 and device == "cuda" and not torch.cuda.is_bf16_supported():
        return {**base, "status": "skipped", "reason": f"{torch.cuda.get_device_name()} has no bf16"}
    if bf16 and device == "cpu":
        try:
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                torch.ones(2, 2) @ torch.ones(2, 2)
        except Exception as e:  # noqa: BLE001
            return {**base, "status": "skipped", "reason": f"no CPU bf16 autocast in torch {torch.__version__}: {one_line(e)}"}
    if arm == "strict":
        set_tf32(False)
    if device == "cuda" and a["cudnn_benchmark"]:
        torch.backends.cudnn.benchmark = True
    channels_last = a["memory_format"] == "channels_last"

    g = torch.Generator(device="cpu").manual_seed(0)
    x = (torch.rand(batch, 3, 64, 64, generator=g) - 0.5).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def build():
        torch.manual_seed(0)
        model = Model().to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        fused = arm == "tuned" and device == "cuda"
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if fused else {}))
        return model, opt

    model, opt = build()
    forward = lambda x: loss_of(model, x)  # noqa: E731

    def step():
        opt.zero_grad(set_to_none=True)  # first: no gradient is held through the forward (as ours)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = forward(x)
        loss.backward()
        opt.step()

    comp = {"mode": None, "status": "not used", "reason": None}
    if a["compile"]:
        comp["mode"] = compile_mode
        if compile_mode == "off":
            comp["status"] = "off"
        elif not hasattr(torch, "compile"):
            comp.update(status="unavailable", reason=f"torch {torch.__version__} has no torch.compile")
        else:
            try:
                forward = torch.compile(lambda x: loss_of(model, x), mode=compile_mode, dynamic=False)
                t0 = time.perf_counter()
                for _ in range(max(3, warmup)):  # compiles, and records CUDA graphs where the mode uses them
                    step()
                sync(device)
                comp.update(status="ok", compile_s=round(time.perf_counter() - t0, 1))
            except Exception as e:  # noqa: BLE001 - any failure: record it, run eager
                comp.update(status="failed", reason=one_line(e))
                print(f"tuned B={batch}: torch.compile failed, running eager: {one_line(e)}", file=sys.stderr, flush=True)
                model, opt = build()
                forward = lambda x: loss_of(model, x)  # noqa: E731

    for _ in range(warmup):
        step()
    sync(device)
    peak = reserved = None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        step()
        sync(device)
        peak, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()

    wall, gpu = [], []
    for _ in range(rounds):
        events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)] if device == "cuda" else None
        sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            if events:
                events[i].record()
            step()
        if events:
            events[steps].record()
        sync(device)  # the one sync of the round
        wall.append((time.perf_counter() - t0) * 1e3 / steps)
        if events:
            gpu += [events[i].elapsed_time(events[i + 1]) for i in range(steps)]
    wall_ms = statistics.median(wall)
    return {
        **base, "status": "ok", "reason": None, "steps": steps, "rounds": rounds, "warmup": warmup,
        "wall_ms": wall_ms, "wall_ms_rounds": wall, "images_per_s": batch / wall_ms * 1e3,
        "gpu_ms": statistics.median(gpu) if gpu else None,
        "peak_bytes": peak, "reserved_bytes": reserved,
        "settings": precision_settings(), "compile": comp,
    }


RESULT = "TORCH_REF_RESULT "


def worker(args):
    """--worker ARM:BATCH: one arm at one batch; prints its result as one tagged JSON line."""
    arm, batch = args.worker.split(":")
    r = run_arm(arm, int(batch), args.device, args.steps, args.rounds, args.warmup, args.compile_mode)
    print(RESULT + json.dumps(r), flush=True)


def spawn_arm(arm, batch, args, compile_mode):
    """Runs one arm and batch in a fresh process; a crash or timeout becomes a failed result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{arm}:{batch}", "--device", args.device,
           "--steps", str(args.steps), "--rounds", str(args.rounds), "--warmup", str(args.warmup),
           "--compile-mode", compile_mode]
    base = {"arm": arm, "batch": batch, "status": "failed"}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.arm_timeout)
    except subprocess.TimeoutExpired:
        return {**base, "reason": f"timed out after {args.arm_timeout} s (--arm-timeout)"}
    sys.stderr.write(p.stderr)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(RESULT)]
    if p.returncode != 0 or not lines:
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-3:]) or "no output"
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        return {**base, "reason": f"{how}: {tail[-600:]}"}
    return json.loads(lines[-1][len(RESULT):])


def time_arm(arm, batch, args):
    """spawn_arm, and for a compiled tuned arm whose process failed (a compile that crashed or
    outlasted --arm-timeout) the same arm eager, recording why compile was dropped."""
    r = spawn_arm(arm, batch, args, args.compile_mode)
    if arm != "tuned" or r["status"] != "failed" or args.compile_mode == "off" or not hasattr(torch, "compile"):
        return r
    print(f"tuned B={batch} failed with torch.compile ({r['reason']}): rerunning it eager", file=sys.stderr, flush=True)
    eager = spawn_arm(arm, batch, args, "off")
    if eager["status"] == "ok":
        eager["compile"] = {"mode": args.compile_mode, "status": "failed", "reason": f"the compiled run failed: {r['reason']}"}
    return eager


def step_line(r):
    head = f"train_step {r['arm']:7s} B={r['batch']:<4d}"
    if r["status"] != "ok":
        return f"{head} {r['status']}: {r['reason']}"
    gpu = f"{r['gpu_ms']:8.3f} ms GPU" if r["gpu_ms"] is not None else "     - GPU"
    peak = f"{r['peak_bytes'] / 2**20:8.1f} MiB peak" if r["peak_bytes"] is not None else ""
    comp = f"  compile {r['compile']['status']}" if r["compile"]["mode"] else ""
    return f"{head} {r['wall_ms']:9.3f} ms wall {r['images_per_s']:10.1f} img/s {gpu} {peak}{comp}"


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


def op_entries(args):
    """The op timings (matmuls, nearest code, the seed's conv layers), as before."""
    dev = args.device
    if dev == "cuda":
        set_tf32(args.tf32)
    run = timer(dev)
    reps, warm = (3, 1) if args.quick else (20, 5)
    entries = []

    def add(name, family, flops, fn, r=reps):
        t = run(fn, r, warm)
        med = statistics.median(t)
        entries.append({"name": name, "family": family, "median_ms": med, "gflops": flops / med / 1e6 if flops else None})
        print(f"{name:60s} {med:10.3f} ms  {flops / med / 1e6 if flops else 0:10.1f} GFLOP/s", flush=True)

    g = torch.Generator(device="cpu").manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g).to(dev)  # noqa: E731
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
    return entries


def positive_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got '{text}'")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got '{text}'")
    return values


def arm_list(text):
    arms = text.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown arm '{unknown[0]}' (arms: {', '.join(ARMS)})")
    return arms


def positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return n


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here (rewritten after each arm)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions of the ops; 2 rounds of the step")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--tf32", action="store_true", help="ops only: allow TF32 (off: exact f32 like ours)")
    ap.add_argument("--only-step", action="store_true", help="time the training step only, not the ops")
    ap.add_argument("--arms", type=arm_list, default=list(ARMS), help="comma-separated arms (default: strict,default,tuned)")
    ap.add_argument("--batches", type=positive_list, default=[32, 256], help="comma-separated batch sizes (default 32,256)")
    ap.add_argument("--steps", type=positive, default=20, help="back-to-back steps per round, one sync at the end (default 20)")
    ap.add_argument("--rounds", type=positive, default=None, help="rounds per arm and batch (default 5; 2 with --quick)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up steps per arm and batch (default 10)")
    # reduce-overhead: inductor kernels replayed as CUDA graphs, which removes the per-kernel
    # launch cost that dominates small batches; max-autotune's kernel search takes minutes
    ap.add_argument("--compile-mode", default="reduce-overhead",
                    help="torch.compile mode of the tuned arm, or 'off' (default reduce-overhead)")
    ap.add_argument("--arm-timeout", type=positive, default=420, help="seconds one arm at one batch may take (default 420)")
    ap.add_argument("--tiny", action="store_true", help="a seconds-long check: --only-step --batches 2 --steps 2 --rounds 1 --warmup 1")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch.cuda.is_available() is False")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.tiny:
        args.only_step, args.batches, args.steps, args.rounds, args.warmup = True, [2], 2, 1, 1
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    return args


def main():
    args = parse_args(sys.argv[1:])
    if args.worker:
        worker(args)
        return
    dev = args.device
    info = {
        "torch": torch.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if dev == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "device_kind": dev, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if dev == "cuda" else None,
        "steps": args.steps, "rounds": args.rounds, "warmup": args.warmup, "compile_mode": args.compile_mode,
        "ops_tf32": args.tf32, "arms": describe_arms(dev, args.compile_mode),
    }
    print(json.dumps({k: v for k, v in info.items() if k != "arms"}), flush=True)
    out = {"schema": SCHEMA, "info": info, "train_step": [], "entries": []}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)

    for batch in args.batches:
        for arm in args.arms:
            r = time_arm(arm, batch, args)
            out["train_step"].append(r)
            print(step_line(r), flush=True)
            save()
    if not args.only_step:
        out["entries"] = op_entries(args)
    save()


if __name__ == "__main__":
    main()
