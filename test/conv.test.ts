// conv2d and convTranspose2d against float64 CPU references (test/ref/conv.ts) and finite
// differences, on every layer shape of the seed model (batch 2) and on awkward shapes, under
// both kernel schedules (VQ_CONV_SCHEDULE=reg|smem); an optional cross-check against PyTorch;
// error messages.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { type TorchPython, torchTest } from './torch/python.js';
import { compare, gpu, gradcheck, assertBitwise } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { Rng } from '../engine/random.js';
import { Tensor, tensor } from '../engine/tensor.js';
import * as C from '../engine/conv.js';
import { type Flags, withFlags } from '../engine/flags.js';
import { convTOut, convOut, refConv2d, refConv2dGrads, refConvT2d, refConvT2dGrads, type RefConv, type RefConvT } from './ref/conv.js';

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
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
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

interface Case {
  name: string;
  transposed: boolean;
  /** conv: [B, Cin, H, W] -> weight [Cout, Cin, kh, kw]; convT: weight [Cin, Cout, kh, kw]. */
  B: number;
  CI: number;
  IH: number;
  IW: number;
  CO: number;
  KH: number;
  KW: number;
  stride?: number | C.ConvPair;
  padding?: number | C.ConvPair;
  outputPadding?: number | C.ConvPair;
  bias?: boolean;
  relu?: boolean;
}

const pr = (v: number | C.ConvPair | undefined, d: number): C.ConvPair => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

function refGeom(c: Case): RefConvT {
  const [sy, sx] = pr(c.stride, 1);
  const [py, px] = pr(c.padding, 0);
  const [oy, ox] = pr(c.outputPadding, 0);
  return { B: c.B, CI: c.CI, IH: c.IH, IW: c.IW, CO: c.CO, KH: c.KH, KW: c.KW, sy, sx, py, px, oy, ox };
}

interface Data {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array | null;
  dy: Float32Array;
  yShape: number[];
}

function makeData(c: Case, seed: number): Data {
  const g = refGeom(c);
  const [OH, OW] = c.transposed ? convTOut(g) : convOut(g);
  const fan = (c.transposed ? c.CO : c.CI) * c.KH * c.KW;
  const yShape = [c.B, c.CO, OH, OW];
  return {
    x: rand(c.B * c.CI * c.IH * c.IW, seed),
    w: rand(c.CI * c.CO * c.KH * c.KW, seed + 1, 1 / Math.sqrt(fan)),
    b: c.bias === false ? null : rand(c.CO, seed + 2, 0.5),
    dy: rand(prod(yShape), seed + 3),
    yShape,
  };
}

/** Float64 forward and gradients (through the ReLU when the case fuses one). */
function reference(c: Case, d: Data) {
  const g = refGeom(c);
  let y = c.transposed ? refConvT2d(d.x, d.w, d.b, g) : refConv2d(d.x, d.w, d.b, g as RefConv);
  let dy: ArrayLike<number> = d.dy;
  if (c.relu) {
    y = y.map((v) => Math.max(v, 0));
    dy = Float64Array.from(d.dy, (v, i) => (y[i] > 0 ? v : 0));
  }
  const grads = c.transposed ? refConvT2dGrads(d.x, d.w, dy, g) : refConv2dGrads(d.x, d.w, dy, g as RefConv);
  return { y, ...grads };
}

function apply(c: Case, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const opts = { stride: c.stride, padding: c.padding, activation: c.relu ? ('relu' as const) : null };
  return c.transposed ? C.convTranspose2d(x, w, b, { ...opts, outputPadding: c.outputPadding }) : C.conv2d(x, w, b, opts);
}

const wShape = (c: Case) => (c.transposed ? [c.CI, c.CO, c.KH, c.KW] : [c.CO, c.CI, c.KH, c.KW]);

/** Forward and all three gradients through the autograd API, against the float64 reference. */
async function checkCase(t: TestLike, c: Case, d: Data, ref: ReturnType<typeof reference>, label: string): Promise<void> {
  const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]).requireGrad();
  const w = tensor(d.w, wShape(c)).requireGrad();
  const b = d.b ? tensor(d.b, [c.CO]).requireGrad() : null;
  const y = apply(c, x, w, b);
  t.same(y.shape, d.yShape, `${label}: output shape`);
  close(t, await y.read(), ref.y, `${label}: forward`);
  const seed = tensor(d.dy, d.yShape);
  backward(y, { grad: seed });
  close(t, await x.grad!.read(), ref.dx, `${label}: input gradient`);
  close(t, await w.grad!.read(), ref.dw, `${label}: weight gradient`);
  if (b) close(t, await b.grad!.read(), ref.db, `${label}: bias gradient`);
  for (const v of [x, w, b, y, seed, x.grad, w.grad, b?.grad]) v?.dispose();
}

// ---- The seed model's layers (SPEC section 1) at batch 2, full spatial size.

const SEED: Case[] = [
  { name: 'enc conv1 3->64 k4 s2 p1 + relu', transposed: false, B: 2, CI: 3, IH: 64, IW: 64, CO: 64, KH: 4, KW: 4, stride: 2, padding: 1, relu: true },
  { name: 'enc conv2 64->128 k4 s2 p1 + relu', transposed: false, B: 2, CI: 64, IH: 32, IW: 32, CO: 128, KH: 4, KW: 4, stride: 2, padding: 1, relu: true },
  { name: 'enc conv3 128->128 k3 p1', transposed: false, B: 2, CI: 128, IH: 16, IW: 16, CO: 128, KH: 3, KW: 3, padding: 1 },
  { name: 'residual 3x3 128->32 p1, no bias, + relu', transposed: false, B: 2, CI: 128, IH: 16, IW: 16, CO: 32, KH: 3, KW: 3, padding: 1, bias: false, relu: true },
  { name: 'residual 1x1 32->128, no bias', transposed: false, B: 2, CI: 32, IH: 16, IW: 16, CO: 128, KH: 1, KW: 1, bias: false },
  { name: 'pre-vq 1x1 128->64', transposed: false, B: 2, CI: 128, IH: 16, IW: 16, CO: 64, KH: 1, KW: 1 },
  { name: 'dec conv1 64->128 k3 p1', transposed: false, B: 2, CI: 64, IH: 16, IW: 16, CO: 128, KH: 3, KW: 3, padding: 1 },
  { name: 'dec convT1 128->64 k4 s2 p1 + relu', transposed: true, B: 2, CI: 128, IH: 16, IW: 16, CO: 64, KH: 4, KW: 4, stride: 2, padding: 1, relu: true },
  { name: 'dec convT2 64->3 k4 s2 p1', transposed: true, B: 2, CI: 64, IH: 32, IW: 32, CO: 3, KH: 4, KW: 4, stride: 2, padding: 1 },
];

// ---- Awkward shapes: odd sizes, 1 and 3 channels, kernels wider than the input, no padding,
// strides 1, 2 and 3, non-square strides and paddings, output padding.
const AWKWARD: Case[] = [
  { name: 'odd 7x5, Cin 1, Cout 3, k3 p1', transposed: false, B: 2, CI: 1, IH: 7, IW: 5, CO: 3, KH: 3, KW: 3, padding: 1 },
  { name: 'Cin 3, Cout 1, k4 s2 p1 on 9x11', transposed: false, B: 2, CI: 3, IH: 9, IW: 11, CO: 1, KH: 4, KW: 4, stride: 2, padding: 1 },
  { name: 'kernel 5x5 wider than 3x4 input (p1)', transposed: false, B: 2, CI: 2, IH: 3, IW: 4, CO: 5, KH: 5, KW: 5, padding: 1 },
  { name: 'k6x2 s3x1 p2x0 on 11x6', transposed: false, B: 1, CI: 5, IH: 11, IW: 6, CO: 7, KH: 6, KW: 2, stride: [3, 1], padding: [2, 0] },
  { name: 'k3 s2 p0 odd 9x9, 1x1 output rows', transposed: false, B: 3, CI: 4, IH: 9, IW: 9, CO: 9, KH: 3, KW: 3, stride: 2 },
  { name: '1x1 s2 on odd 5x7 (taps skip rows)', transposed: false, B: 2, CI: 6, IH: 5, IW: 7, CO: 4, KH: 1, KW: 1, stride: 2 },
  { name: '1x1, Cin 5 (channel tail), 20 rows', transposed: false, B: 2, CI: 5, IH: 3, IW: 5, CO: 20, KH: 1, KW: 1 },
  { name: 'k7 on 1x1 input, p3', transposed: false, B: 2, CI: 3, IH: 1, IW: 1, CO: 3, KH: 7, KW: 7, padding: 3 },
  { name: 'T k4 s2 p1 op1, 5x3 -> 11x7, Cin 3 Cout 1', transposed: true, B: 2, CI: 3, IH: 5, IW: 3, CO: 1, KH: 4, KW: 4, stride: 2, padding: 1, outputPadding: 1 },
  { name: 'T k3 s2 p1 op1, Cout 17', transposed: true, B: 2, CI: 4, IH: 4, IW: 4, CO: 17, KH: 3, KW: 3, stride: 2, padding: 1, outputPadding: 1 },
  { name: 'T k3 s1 p0, odd 5x7, Cin 1', transposed: true, B: 2, CI: 1, IH: 5, IW: 7, CO: 3, KH: 3, KW: 3 },
  { name: 'T k1 s2 (phases with no taps)', transposed: true, B: 2, CI: 3, IH: 3, IW: 4, CO: 2, KH: 1, KW: 1, stride: 2, outputPadding: 1 },
  { name: 'T k5x2 s3x2 p1x0 op2x1', transposed: true, B: 1, CI: 2, IH: 3, IW: 4, CO: 5, KH: 5, KW: 2, stride: [3, 2], padding: [1, 0], outputPadding: [2, 1], relu: true },
  { name: '1x1, Cin 12, Cout 7 (input gradient: row quads, channel tail)', transposed: false, B: 2, CI: 12, IH: 5, IW: 6, CO: 7, KH: 1, KW: 1 },
  { name: '1x1, Cin 8, Cout 16 (weights read as stored)', transposed: false, B: 2, CI: 8, IH: 3, IW: 8, CO: 16, KH: 1, KW: 1 },
  { name: '1x1 s2, Cin 8, Cout 7 on 7x5 (phases no tap reaches)', transposed: false, B: 2, CI: 8, IH: 7, IW: 5, CO: 7, KH: 1, KW: 1, stride: 2 },
  { name: 'k2x8 p0x1 on 3x9 (weight gradient: two whole tap vec4s per kernel row)', transposed: false, B: 1, CI: 2, IH: 3, IW: 9, CO: 3, KH: 2, KW: 8, padding: [0, 1] },
];

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

/**
 * A seed layer with its spatial size cut down for finite differences: channels, kernel, stride
 * and padding kept, and maps still 8 wide on the strided side so the same kernel variants run as
 * at full size. Without its ReLU: with thousands of outputs, f32 rounding of the loss and
 * pre-activations crossing 0 swamp central differences; the fused ReLU's gradient is checked
 * exactly against float64 above and by finite differences on a small awkward case.
 */
function small(c: Case): Case {
  const n = c.stride === 2 && !c.transposed ? 16 : 8;
  return { ...c, IH: n, IW: n, relu: false, name: c.name.replace(' + relu', '') };
}

async function gradcheckCase(t: TestLike, c: Case, seed: number, label: string): Promise<void> {
  const d = makeData(c, seed);
  const inputs = [
    { data: d.x, shape: [c.B, c.CI, c.IH, c.IW] },
    { data: d.w, shape: wShape(c) },
    ...(d.b ? [{ data: d.b, shape: [c.CO] }] : []),
  ];
  // Linear in each input, so central differences are exact for any step up to rounding: a large
  // step keeps each element's perturbation (the direction is normalised over up to ~30k
  // elements) far above f32 resolution. With a fused ReLU, a small step to stay off its kink.
  const fails = await gradcheck(([x, w, b]) => apply(c, x, w, b ?? null), inputs, { eps: c.relu ? 1e-2 : 0.5, rtol: 1e-2, atol: 1e-3, seed });
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
async function regFwdDgradWith(setting: Partial<Flags>, c: Case, d: ReturnType<typeof makeData>): Promise<Float32Array> {
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
  const run = (c: Case, d: Data, convBroadcast: boolean) =>
    withFlags({ convSchedule: 'reg', convBroadcast }, async () => {
      const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]).requireGrad();
      const w = tensor(d.w, wShape(c)).requireGrad();
      const b = d.b ? tensor(d.b, [c.CO]) : null;
      const y = apply(c, x, w, b);
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
