// conv2d and convTranspose2d against float64 CPU references (test/ref/conv.ts) and finite
// differences, on every layer shape of the seed model (batch 2) and on awkward shapes (the
// cases in test/cases/conv.ts), under both kernel schedules (VQ_CONV_SCHEDULE=reg|smem); an
// optional cross-check against PyTorch; error messages.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { type TorchPython, torchTest } from './torch/python.js';
import { compare, gpu, gradcheck, assertBitwise } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { Rng } from '../engine/random.js';
import { tensor } from '../engine/tensor.js';
import * as C from '../engine/conv.js';
import { type Flags, withFlags } from '../engine/flags.js';
import { AWKWARD, SEED, applyConv, makeData, reference, refGeom, small, wShape, type ConvCase, type ConvData } from './cases/conv.js';

/** The parts of a tap test object these helpers use. */
type TestLike = { ok: (v: unknown, msg: string) => unknown; same: (a: unknown, b: unknown, msg: string) => unknown };

const runtime = await gpu(t);
// reg runs everywhere: with subgroups of 8 its lanes share weight loads by broadcast, elsewhere each lane loads them.
const broadcast = runtime.caps.subgroups && runtime.caps.subgroupMinSize >= 8;
const SCHEDULES: C.ConvSchedule[] = ['reg', 'smem'];

function withSchedule<T>(s: C.ConvSchedule, fn: () => Promise<T>): Promise<T> {
  return withFlags({ convSchedule: s }, fn);
}

const rand = (n: number, seed: number, scale = 1) => new Rng(seed).uniformArray(n, -scale, scale);
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/**
 * f32 sums of K products of values in [-1, 1]: compare with an absolute tolerance scaled to the
 * largest reference value (rounding grows with the sum's size, not with each element).
 */
function close(t: TestLike, got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  const r = compare(got, want, { rtol: 1e-4, atol: 2e-5 * Math.max(maxAbs(want), 1e-3) });
  t.ok(r.ok, `${what}: ${r.worst}`);
}

/** Forward and all three gradients through the autograd API, against the float64 reference. */
async function checkCase(t: TestLike, c: ConvCase, d: ConvData, ref: ReturnType<typeof reference>, label: string): Promise<void> {
  const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]).requireGrad();
  const w = tensor(d.w, wShape(c)).requireGrad();
  const b = d.b ? tensor(d.b, [c.CO]).requireGrad() : null;
  const y = applyConv(c, x, w, b);
  t.same(y.shape, d.yShape, `${label}: output shape`);
  close(t, await y.read(), ref.y, `${label}: forward`);
  const seed = tensor(d.dy, d.yShape);
  backward(y, { grad: seed });
  close(t, await x.grad!.read(), ref.dx, `${label}: input gradient`);
  close(t, await w.grad!.read(), ref.dw, `${label}: weight gradient`);
  if (b) close(t, await b.grad!.read(), ref.db, `${label}: bias gradient`);
  for (const v of [x, w, b, y, seed, x.grad, w.grad, b?.grad]) v?.dispose();
}

t.test('seed model layers at batch 2 match float64 (forward, input, weight and bias gradients)', async (t) => {
  for (const [i, c] of SEED.entries()) {
    const d = makeData(c, 100 + 10 * i);
    const ref = reference(c, d);
    for (const s of SCHEDULES) await withSchedule(s, () => checkCase(t, c, d, ref, `${c.name} [${s}]`));
  }
});

t.test('awkward shapes match float64', async (t) => {
  for (const [i, c] of AWKWARD.entries()) {
    const d = makeData(c, 300 + 10 * i);
    const ref = reference(c, d);
    for (const s of SCHEDULES) await withSchedule(s, () => checkCase(t, c, d, ref, `${c.name} [${s}]`));
  }
});

async function gradcheckCase(t: TestLike, c: ConvCase, seed: number, label: string): Promise<void> {
  const d = makeData(c, seed);
  const inputs = [
    { data: d.x, shape: [c.B, c.CI, c.IH, c.IW] },
    { data: d.w, shape: wShape(c) },
    ...(d.b ? [{ data: d.b, shape: [c.CO] }] : []),
  ];
  // Linear in each input, so central differences are exact for any step up to rounding: a large
  // step keeps each element's perturbation (the direction is normalised over up to ~30k
  // elements) far above f32 resolution. With a fused ReLU, a small step to stay off its kink.
  const fails = await gradcheck(([x, w, b]) => applyConv(c, x, w, b ?? null), inputs, { eps: c.relu ? 1e-2 : 0.5, rtol: 1e-2, atol: 1e-3, seed });
  t.same(fails, [], label);
}

t.test('gradcheck: every seed layer (spatially reduced) and awkward shapes', async (t) => {
  for (const s of SCHEDULES) {
    await withSchedule(s, async () => {
      for (const [i, c] of SEED.entries()) await gradcheckCase(t, small(c), 500 + i, `${small(c).name} ${small(c).IH}x${small(c).IW} [${s}]`);
      for (const [i, c] of AWKWARD.entries()) await gradcheckCase(t, c, 600 + i, `${c.name} [${s}]`);
    });
  }
});

const noBroadcast = broadcast ? false : 'this device has no subgroups of 8 (reg weight gradients broadcast rows of A)';
t.test('both schedules agree; weight gradients are deterministic', { skip: noBroadcast }, async (t) => {
  const c = SEED[1];
  const d = makeData(small(c), 700);
  const sc = small(c);
  const x = tensor(d.x, [sc.B, sc.CI, sc.IH, sc.IW]);
  const w = tensor(d.w, wShape(sc));
  const g = C.conv2dGeom(x, w, null, { stride: 2, padding: 1 });
  const dy = tensor(rand(sc.B * sc.CO * g.OH * g.OW, 701), [sc.B, sc.CO, g.OH, g.OW]);
  const runs: Float32Array[] = [];
  for (const s of ['reg', 'reg', 'smem'] as const) runs.push((await C.conv2dWeightGrad(dy, x, g, s).read()) as Float32Array);
  assertBitwise(t, runs[1], runs[0], 'reg weight gradient is bitwise identical across runs');
  close(t, runs[2], runs[0], 'smem and reg weight gradients');
});

/** The reg forward (no bias) and input gradient (of dy = y) of conv case c, with `setting` in force while they run. */
async function regFwdDgradWith(setting: Partial<Flags>, c: ConvCase, d: ReturnType<typeof makeData>): Promise<Float32Array> {
  const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]);
  const w = tensor(d.w, wShape(c));
  return withFlags(setting, async () => {
    const g = C.conv2dGeom(x, w, null, { stride: c.stride, padding: c.padding });
    const y = C.conv2dForward(x, w, null, g, false, 'reg');
    const dx = C.conv2dInputGrad(y, w, g, 'reg');
    const out = Float32Array.from([...((await y.read()) as Float32Array), ...((await dx.read()) as Float32Array)]);
    for (const v of [x, w, y, dx]) v.dispose();
    return out;
  });
}

t.test('packed weights up to 64 KiB bind as a uniform array (reg), with the same results as storage', async (t) => {
  t.equal(C.uniformWeightVec4s(4096, 16384), 1024, '16 KiB of weights in a 16 KiB buffer');
  t.equal(C.uniformWeightVec4s(10, 256), 16, 'at least 16 vec4s');
  t.equal(C.uniformWeightVec4s(4096, 8192), 0, 'buffer smaller than the declared array: storage');
  t.equal(C.uniformWeightVec4s(20000, 1 << 20), 0, 'over one uniform binding: storage');
  // A 1x1 layer (channel mode) and a 4x4 one (tap mode), forward and input gradient.
  for (const c of [SEED[4], AWKWARD[0]]) {
    const d = makeData(c, 800);
    const outs = [await regFwdDgradWith({ convUniformWeights: true }, c, d), await regFwdDgradWith({ convUniformWeights: false }, c, d)];
    assertBitwise(t, outs[0], outs[1], `${c.name}: uniform and storage weights give bitwise identical results`);
  }
});

const noTextures = noBroadcast || (runtime.caps.readonlyStorageTextures ? false : 'this device has no read-only storage textures');
t.test('reg weight gradients read through textures equal those read from storage buffers, bitwise', { skip: noTextures }, async (t) => {
  // Count the operands copied into textures (the real calls, counted).
  const vec4Texture = runtime.vec4Texture.bind(runtime);
  let copies = 0;
  runtime.vec4Texture = (src, n, slot) => {
    copies++;
    return vec4Texture(src, n, slot);
  };
  try {
    for (const [i, c] of [...SEED.map(small), ...AWKWARD].entries()) {
      const d = makeData(c, 900 + i);
      const outs: Float32Array[] = [];
      const used: number[] = [];
      for (const value of ['AX', '0'] as const) {
        const before = copies;
        const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]);
        const w = tensor(d.w, wShape(c));
        const dy = tensor(d.dy, d.yShape);
        const dw = withFlags({ convWgradTextures: value }, () =>
          c.transposed
            ? C.convTranspose2dWeightGrad(dy, x, C.convTranspose2dGeom(x, w, null, { stride: c.stride, padding: c.padding, outputPadding: c.outputPadding }), 'reg')
            : C.conv2dWeightGrad(dy, x, C.conv2dGeom(x, w, null, { stride: c.stride, padding: c.padding }), 'reg'),
        );
        outs.push((await dw.read()) as Float32Array);
        used.push(copies - before);
        for (const v of [x, w, dy, dw]) v.dispose();
      }
      t.equal(used[1], 0, `${c.name}: no textures when turned off`);
      // A vec4 operand needs rows (A: QW) or input rows (X: IW) a multiple of 4 wide.
      const OW = d.yShape[3];
      const vecA = (c.transposed ? c.IW : OW) % 4 === 0;
      const vecX = (c.transposed ? OW : c.IW) % 4 === 0;
      if (vecA || vecX) t.ok(used[0] > 0, `${c.name}: ${used[0]} operand(s) read through textures`);
      assertBitwise(t, outs[0], outs[1], `${c.name}: the same weight gradient`);
    }
  } finally {
    runtime.vec4Texture = vec4Texture;
  }
});

t.test('reg kernels without subgroup broadcast (each lane loads its weights or rows of A) give the broadcast results, bitwise', { skip: broadcast ? false : 'this device has no subgroups of 8 to compare with' }, async (t) => {
  // The kernels SwiftShader and devices without subgroups run, checked here against the kernels
  // the float64 tests above check: every seed layer (reduced) and awkward shape, forward and input gradient.
  const run = (c: ConvCase, d: ConvData, convBroadcast: boolean) =>
    withFlags({ convSchedule: 'reg', convBroadcast }, async () => {
      const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]).requireGrad();
      const w = tensor(d.w, wShape(c)).requireGrad();
      const b = d.b ? tensor(d.b, [c.CO]) : null;
      const y = applyConv(c, x, w, b);
      const dy = tensor(d.dy, d.yShape);
      backward(y, { grad: dy });
      const parts = [await y.read(), await x.grad!.read(), await w.grad!.read()] as Float32Array[];
      for (const v of [x, w, b, y, dy, x.grad, w.grad]) v?.dispose();
      return Float32Array.from(parts.flatMap((p) => [...p]));
    });
  for (const [i, c] of [...SEED.map(small), ...AWKWARD].entries()) {
    const d = makeData(c, 1000 + i);
    assertBitwise(t, await run(c, d, false), await run(c, d, true), `${c.name}: forward, input and weight gradients`);
  }
});

t.test('1x1 weights read as stored (no repack) give the results of repacked ones, bitwise', async (t) => {
  // Forward with [ROWS, KIN] as packed; input gradient with [KIN, ROWS] read as row quads (with
  // rows past ROWS in the last tile, and a channel tail).
  const byName = (n: string) => AWKWARD.find((c) => c.name.startsWith(n))!;
  for (const c of [SEED[4], SEED[5], byName('1x1, Cin 12'), byName('1x1, Cin 8'), byName('1x1 s2')]) {
    const d = makeData(c, 810);
    const outs = [await regFwdDgradWith({ convRepack1x1: true }, c, d), await regFwdDgradWith({ convRepack1x1: false }, c, d)];
    assertBitwise(t, outs[0], outs[1], `${c.name}: the same outputs and input gradients as with repacked weights`);
  }
});

t.test('more than 65535 position tiles (the grid splits over z)', async (t) => {
  // 2048 x 2048 positions: 65536 tiles of 8 lanes x 8 positions (reg), of 64 positions (smem).
  const [H, W] = [2048, 2048];
  const x = rand(H * W, 800);
  const xt = tensor(x, [1, 1, H, W]);
  const wt = tensor([0.5, -2], [2, 1, 1, 1]);
  const bt = tensor([0.25, 1], [2]);
  for (const s of SCHEDULES) {
    await withSchedule(s, async () => {
      const y = (await C.conv2d(xt, wt, bt).read()) as Float32Array;
      let bad = -1;
      for (let i = 0; i < H * W && bad < 0; i++) {
        if (y[i] !== Math.fround(0.5 * x[i] + 0.25) || y[H * W + i] !== Math.fround(-2 * x[i] + 1)) bad = i;
      }
      t.equal(bad, -1, `1x1 conv over ${H}x${W} positions [${s}]${bad >= 0 ? `: first wrong position ${bad}` : ''}`);
    });
  }
  for (const v of [xt, wt, bt]) v.dispose();
});

// ---- PyTorch cross-check (skipped without torch, except under CI=true: test/torch/python.ts)

const TORCH = `
import json, sys, torch
import torch.nn.functional as F
torch.set_default_dtype(torch.float64)
out = []
for c in json.load(sys.stdin):
    x = torch.tensor(c['x']).reshape(c['xs']).requires_grad_()
    w = torch.tensor(c['w']).reshape(c['ws']).requires_grad_()
    b = torch.tensor(c['b']).requires_grad_() if c['b'] is not None else None
    if c['transposed']:
        y = F.conv_transpose2d(x, w, b, stride=c['stride'], padding=c['padding'], output_padding=c['op'])
    else:
        y = F.conv2d(x, w, b, stride=c['stride'], padding=c['padding'])
    if c['relu']:
        y = F.relu(y)
    y.backward(torch.tensor(c['dy']).reshape(y.shape))
    out.append({'ys': list(y.shape), 'y': y.detach().flatten().tolist(), 'dx': x.grad.flatten().tolist(),
                'dw': w.grad.flatten().tolist(), 'db': b.grad.flatten().tolist() if b is not None else None})
json.dump(out, sys.stdout)
`;

torchTest(t, 'cross-check against PyTorch', async (t: Test, { python }: TorchPython) => {
  const cases = [...SEED.map(small), ...AWKWARD.filter((_, i) => i % 2 === 0)];
  const datas = cases.map((c, i) => makeData(c, 900 + 10 * i));
  const payload = cases.map((c, i) => {
    const g = refGeom(c);
    return {
      transposed: c.transposed, relu: !!c.relu,
      xs: [c.B, c.CI, c.IH, c.IW], ws: wShape(c), x: [...datas[i].x], w: [...datas[i].w],
      b: datas[i].b ? [...datas[i].b!] : null, dy: [...datas[i].dy],
      stride: [g.sy, g.sx], padding: [g.py, g.px], op: [g.oy, g.ox],
    };
  });
  const r = spawnSync(python, ['-c', TORCH], { input: JSON.stringify(payload), encoding: 'utf8', maxBuffer: 1 << 28, timeout: 120_000 });
  t.equal(r.status, 0, `torch script ran${r.stderr ? `: ${r.stderr.slice(-500)}` : ''}`);
  if (r.status !== 0) return;
  const want = JSON.parse(r.stdout) as { ys: number[]; y: number[]; dx: number[]; dw: number[]; db: number[] | null }[];
  for (const s of SCHEDULES) {
    await withSchedule(s, async () => {
      for (const [i, c] of cases.entries()) {
        const d = datas[i];
        t.same(d.yShape, want[i].ys, `${c.name}: output shape as PyTorch`);
        await checkCase(t, c, d, { y: Float64Array.from(want[i].y), dx: Float64Array.from(want[i].dx), dw: Float64Array.from(want[i].dw), db: Float64Array.from(want[i].db ?? []) }, `${c.name} vs torch [${s}]`);
      }
    });
  }
});

// ---- Errors

t.test('errors name the shapes involved', async (t) => {
  const x = tensor(new Float32Array(2 * 3 * 8 * 8), [2, 3, 8, 8]);
  const w = tensor(new Float32Array(4 * 5 * 3 * 3), [4, 5, 3, 3]);
  t.throws(() => C.conv2d(x, w), /conv2d: input \[2, 3, 8, 8\] has 3 channels but weight \[4, 5, 3, 3\] expects 5/, 'channel mismatch names both shapes');
  const wT = tensor(new Float32Array(5 * 4 * 3 * 3), [5, 4, 3, 3]);
  t.throws(() => C.convTranspose2d(x, wT), /convTranspose2d: input \[2, 3, 8, 8\] has 3 channels but weight \[5, 4, 3, 3\] expects 5/, 'transposed: channel mismatch');
  const x3 = tensor(new Float32Array(3 * 8 * 8), [3, 8, 8]);
  const w3 = tensor(new Float32Array(4 * 3 * 3 * 3), [4, 3, 3, 3]);
  t.throws(() => C.conv2d(x3, w3), /conv2d: input must be 4-D, got shape \[3, 8, 8\]/, 'non-4-D input');
  t.throws(() => C.conv2d(x, tensor(new Float32Array(12), [4, 3])), /conv2d: weight must be 4-D, got shape \[4, 3\]/, 'non-4-D weight');
  t.throws(() => C.conv2d(x, w3, tensor(new Float32Array(5), [5])), /conv2d: bias \[5\] does not match weight \[4, 3, 3, 3\]/, 'bias mismatch');
  const big = tensor(new Float32Array(2 * 3 * 9 * 9), [2, 3, 9, 9]);
  t.throws(() => C.conv2d(x, big), /kernel 9x9 is larger than the padded input 8x8/, 'kernel larger than the padded input');
  t.throws(() => C.conv2d(x, w3, null, { stride: 0 }), /stride must be >= 1/, 'stride 0');
  t.throws(() => C.convTranspose2d(x, tensor(new Float32Array(3 * 2 * 3 * 3), [3, 2, 3, 3]), null, { stride: 2, outputPadding: 2 }), /outputPadding \[2, 2\] must be smaller than stride \[2, 2\]/, 'output padding >= stride');
  const xi = tensor(new Int32Array(2 * 3 * 8 * 8), [2, 3, 8, 8], 'i32');
  t.throws(() => C.conv2d(xi, w3), /conv2d: expected f32/, 'integer input');
  for (const v of [x, w, wT, x3, w3, big, xi]) v.dispose();
});
