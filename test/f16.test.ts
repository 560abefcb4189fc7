// f16 tensors: the CPU conversion (half.ts) against a float64 reference, upload and readback,
// casts and their gradients, the f16 elementwise ops, sums and their gradients against float64
// rounded to f16, the f32 kernels' WGSL unchanged, the f16 model forward, and the --precision
// setting. Runs on lavapipe, which has shader-f16 (a device without it fails the first test).
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { castTo } from '../engine/cast.js';
import * as E from '../engine/elementwise.js';
import { F16_MAX, f16Bits, f16Value, fromHalfBits, roundF16, toHalfBits } from '../engine/half.js';
import { Rng } from '../engine/random.js';
import { mean, sum } from '../engine/reduce.js';
import { permute, reshape, slice } from '../engine/shape.js';
import type { Runtime } from '../engine/runtime.js';
import { Storage, Tensor, empty, tensor, tidy } from '../engine/tensor.js';
import { nearestCode, vectorQuantize } from '../engine/vq.js';
import { VqVae } from '../model/vqvae.js';
import { parseTrainArgs, resolvePrecision, resolveTrainConfig, trainHelp } from '../train/config.js';

const rt = await gpu(t);

// ---- helpers

/** Half bits as a signed order (adjacent finite halves differ by 1; -0 and +0 coincide). */
const order = (h: number) => (h & 0x8000 ? -(h & 0x7fff) : h);

/** Worst distance in f16 steps between `got` bits and the f16 rounding of `want`; NaN must match NaN. */
function ulpError(got: ArrayLike<number>, want: ArrayLike<number>): { worst: number; at: string } {
  let worst = 0;
  let at = 'none';
  for (let i = 0; i < want.length; i++) {
    const e = f16Bits(want[i]);
    const gNaN = Number.isNaN(f16Value(got[i]));
    const d = Number.isNaN(want[i]) || gNaN ? (Number.isNaN(want[i]) === gNaN ? 0 : Infinity) : Math.abs(order(got[i]) - order(e));
    if (d > worst) {
      worst = d;
      at = `[${i}]: got ${f16Value(got[i])}, want ${want[i]} (rounds to ${f16Value(e)})`;
    }
  }
  return { worst, at };
}

async function halfBitsOf(x: Tensor): Promise<Uint16Array> {
  if (x.dtype !== 'f16') throw new Error(`expected f16, got ${x.describe()}`);
  return (await x.read()) as Uint16Array;
}

/** n values in [low, high), rounded to f16 (so they are exact inputs). */
function halves(n: number, seed: number, low: number, high: number): number[] {
  return Array.from(new Rng(seed).uniformArray(n, low, high), roundF16);
}

// ---- the f32 kernels' source

t.test('f32 elementwise and reduce kernels: the WGSL snapshot (code generation changes show up in review)', async (t) => {
  // The first kernels this file compiles, in a fixed order. The elementwise sections are
  // templated on the storage type since f16; their f32 results hash identical to before.
  const src: string[] = [];
  rt.onKernelSource = (k, code) => src.push(`// ==== ${k.name}\n${code}`);
  tidy(() => {
    const a = tensor([1, -2, 3, 4, 5, -6, 7, 8], [2, 4]).requireGrad();
    const b = tensor([1, 2, 3, 4], [4]).requireGrad();
    const c = tensor([1, 2, 3], [3]);
    const l = sum(E.add(E.mul(E.relu(a), b), E.scale(E.tanh(E.div(a, b)), 2)));
    backward(l);
    E.relu(c);
    E.add(c, c);
    E.maximum(c, c);
    a.grad?.dispose();
    b.grad?.dispose();
  });
  await rt.sync();
  rt.onKernelSource = null;
  const file = fileURLToPath(new URL('./plans/elementwise_f32.wgsl', import.meta.url));
  // After a deliberate change to these kernels (comments included): UPDATE_WGSL_SNAPSHOTS=1
  if (process.env.UPDATE_WGSL_SNAPSHOTS === '1') writeFileSync(file, src.join('\n'));
  t.equal(src.join('\n'), readFileSync(file, 'utf8'), 'test/plans/elementwise_f32.wgsl');
});

// ---- CPU conversion

t.test('f16Value: every bit pattern, against the format definition', async (t) => {
  let bad = 0;
  for (let h = 0; h < 0x10000; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 31;
    const f = h & 1023;
    const want = e === 31 ? (f ? NaN : s * Infinity) : e === 0 ? s * f * 2 ** -24 : s * (1 + f / 1024) * 2 ** (e - 15);
    const got = f16Value(h);
    if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)))) bad++;
    // round trip: every non-NaN pattern converts back to itself
    if (!Number.isNaN(got) && f16Bits(got) !== h) bad++;
  }
  t.equal(bad, 0, 'all 65536 patterns decode as defined and round-trip');
});

t.test('f16Bits rounds to nearest even: subnormals, halfway cases, overflow, inf, nan', async (t) => {
  // float64 reference: the nearest of the sorted finite halves, ties to the even pattern;
  // from 65520 (halfway between 65504 and 2^16) up, infinity
  const finite: number[] = [];
  for (let h = 0; h <= 0x7bff; h++) finite.push(f16Value(h));
  const reference = (x: number): number => {
    if (Number.isNaN(x)) return 0x7e00;
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= 65520) return sign | 0x7c00;
    let lo = 0;
    let hi = finite.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (finite[mid] <= a) lo = mid;
      else hi = mid;
    }
    if (finite[hi] <= a) lo = hi;
    const up = Math.min(lo + 1, finite.length - 1);
    const dLo = a - finite[lo];
    const dUp = finite[up] - a;
    const pick = dLo < dUp ? lo : dUp < dLo ? up : lo % 2 === 0 ? lo : up;
    return sign | pick;
  };
  const cases: number[] = [0, -0, 1, -1, 1 / 3, 0.1, 2049, 2051, 65504, 65519.99, 65520, 65535, 1e6, Infinity, -Infinity, NaN, -NaN,
    2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 3 * 2 ** -25, 5 * 2 ** -25, 2 ** -14, 2 ** -14 - 2 ** -25, 2 ** -14 - 2 ** -26, 1e-8, -1e-8, 6e-8, 5.960464477539063e-8];
  // every halfway point between neighbours (ties), and just either side of it
  for (let h = 0; h < 0x7bff; h += 37) {
    const mid = (f16Value(h) + f16Value(h + 1)) / 2;
    cases.push(mid, -mid, mid * (1 + 2 ** -40), mid * (1 - 2 ** -40));
  }
  const rng = new Rng(5);
  for (let i = 0; i < 2000; i++) cases.push((rng.next() - 0.5) * 2 ** (rng.next() * 44 - 28));
  let bad = 0;
  let first = '';
  for (const x of cases) {
    const got = f16Bits(x);
    const want = reference(x);
    if (got !== want) {
      bad++;
      first ||= `${x}: got 0x${got.toString(16)}, want 0x${want.toString(16)}`;
    }
  }
  t.equal(bad, 0, `${cases.length} values round as the float64 reference ${first}`);
  t.equal(f16Bits(2049), f16Bits(2048), '2049 ties to the even 2048');
  t.equal(f16Bits(2051), f16Bits(2052), '2051 ties to the even 2052');
  t.equal(f16Bits(65519.99), 0x7bff, 'just below 65520 stays finite');
  t.equal(f16Bits(65520), 0x7c00, '65520 rounds to infinity');
  t.equal(f16Bits(2 ** -25), 0, 'half the smallest subnormal ties to 0');
  t.equal(f16Bits(3 * 2 ** -25), 2, '1.5 subnormal steps tie to 2 steps');
  t.equal(f16Bits(-0), 0x8000, '-0 keeps its sign');
  t.equal(F16_MAX, f16Value(0x7bff));
});

// ---- tensors, upload and readback

t.test('f16 tensors round-trip through the GPU at odd lengths (bitwise)', async (t) => {
  for (const n of [1, 3, 5, 1027]) {
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = (i * 40503 + 7) & 0xffff;
    const x = tensor(bits, [n]);
    t.equal(x.dtype, 'f16', 'a Uint16Array makes an f16 tensor');
    t.same(await halfBitsOf(x), bits, `${n} halves`);
    const y = tensor([0.1, -2.5, 65536].slice(0, Math.min(3, n)), [Math.min(3, n)], 'f16');
    t.same(Array.from(fromHalfBits(await halfBitsOf(y))), [0.1, -2.5, 65536].slice(0, Math.min(3, n)).map(roundF16), 'numbers are rounded to f16');
    x.dispose();
    y.dispose();
  }
  t.equal(await tensor([1 / 3], [1], 'f16').item(), roundF16(1 / 3), 'item() gives the value, not the bits');
  t.same(Array.from(await E.onesLike(tensor([0, 0, 0], [3], 'f16')).read()), [0x3c00, 0x3c00, 0x3c00], 'fill of an odd f16 tensor');
});

t.test('permute moves f16 elements (odd sizes, the model NCHW -> rows), with its gradient; slice refuses f16; reshape, a view, takes it', async (t) => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], 'f16');
  t.same(Array.from(fromHalfBits(await halfBitsOf(permute(x, [1, 0])))), [1, 4, 2, 5, 3, 6]);
  for (const [shape, perm] of [[[3, 5, 7], [2, 0, 1]], [[2, 3, 4, 5], [0, 2, 3, 1]], [[1, 7, 3, 3], [0, 2, 3, 1]], [[5], [0]]] as [number[], number[]][]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = halves(n, n, -4, 4);
    const y = tidy(() => permute(tensor(values, shape, 'f16'), perm));
    t.same(y.shape, perm.map((d) => shape[d]));
    const inStrides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
    const want = Array.from({ length: n }, (_, i) => {
      let rem = i;
      let off = 0;
      for (let k = perm.length - 1; k >= 0; k--) {
        const d = shape[perm[k]];
        off += (rem % d) * inStrides[perm[k]];
        rem = Math.floor(rem / d);
      }
      return values[off];
    });
    t.same(Array.from(fromHalfBits(await halfBitsOf(y))), want, `permute [${shape}] by [${perm}]`);
    y.dispose();
  }
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3], 'f16').requireGrad();
  const g = tidy(() => {
    backward(sum(castTo(E.mul(permute(a, [1, 0]), tensor([1, 2, 3, 4, 5, 6], [3, 2], 'f16')), 'f32')));
    return a.grad!;
  });
  t.same(Array.from(fromHalfBits(await halfBitsOf(g))), [1, 3, 5, 2, 4, 6], 'the gradient permutes back');
  t.throws(() => slice(x, [0], [1]), /slice: f16 tensors are not supported/);
  t.same(Array.from(fromHalfBits(await halfBitsOf(reshape(x, [3, 2])))), [1, 2, 3, 4, 5, 6]);
});

t.test('f16 needs shader-f16: a one-line error names it', async (t) => {
  const noF16 = { caps: { shaderF16: false, description: 'a test device' } } as unknown as Runtime;
  t.throws(() => empty([3], 'f16', noF16), /empty: f16 tensors need a device with shader-f16, which a test device does not have/);
  t.ok(rt.caps.shaderF16, 'this device (lavapipe) has shader-f16');
});

// ---- casts

t.test('castTo f16 rounds as the CPU does; castTo f32 is exact for every half', async (t) => {
  const xs = [0, -0, 1, 1 / 3, -2049, 2051, 65504, 65519, 65520, 1e5, -1e9, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -25, 1e-7, Infinity, -Infinity, NaN];
  const x = tensor(xs);
  const h = castTo(x, 'f16');
  t.equal(h.dtype, 'f16');
  const got = await halfBitsOf(h);
  const want = toHalfBits(xs);
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i])) t.ok(Number.isNaN(f16Value(got[i])), 'NaN stays NaN');
    else t.equal(got[i], want[i], `f16(${xs[i]}) = 0x${want[i].toString(16)}`);
  }
  const all = new Uint16Array(0x10000).map((_, i) => i);
  const back = (await castTo(tensor(all, [all.length]), 'f32').read()) as Float32Array;
  let bad = 0;
  for (let i = 0; i < all.length; i++) {
    const v = f16Value(i);
    if (!(Object.is(back[i], v) || (Number.isNaN(v) && Number.isNaN(back[i])))) bad++;
  }
  t.equal(bad, 0, 'all 65536 halves widen exactly');
});

t.test('cast gradients: cast back to the input type', async (t) => {
  const x = tensor([0.1, -3, 7.25, 1e-5, 300], [5]).requireGrad();
  const h = castTo(x, 'f16');
  const g = tensor([1 / 3, 2, -0.5, 1e-3, 70000], [5]);
  backward(h, { grad: castTo(g, 'f16') });
  t.equal(x.grad!.dtype, 'f32', 'an f32 input gets an f32 gradient');
  t.same(Array.from(await x.grad!.read()), [1 / 3, 2, -0.5, 1e-3, 70000].map(roundF16), 'the f16 gradient, widened exactly');

  const y = tensor([1, 2, 3], [3], 'f16').requireGrad();
  const w = castTo(y, 'f32');
  backward(w, { grad: tensor([0.1, 1e5, -1e-8]) });
  t.equal(y.grad!.dtype, 'f16', 'an f16 input gets an f16 gradient');
  t.same(Array.from(fromHalfBits(await halfBitsOf(y.grad!))), [0.1, 1e5, -1e-8].map(roundF16), 'rounded to f16 (1e5 overflows to inf)');

  const same = castTo(x, 'f32');
  t.not(same, x, 'a cast to the same type is a new tensor');
  t.same(Array.from(await same.read()), Array.from(await x.read()), 'viewing the same values');
  t.throws(() => castTo(tensor([1], [1], 'u32'), 'f16'), /castTo: expected an f32 or f16 tensor/);
});

t.test('the scalar (non-vec4) f16 kernels, on a buffer without room for whole vec4s', async (t) => {
  const n = 5;
  const buf = rt.device.createBuffer({ size: 12, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  const data = [1.5, -2, 3.25, -0.125, 7];
  const bits = new Uint16Array(6);
  bits.set(toHalfBits(data));
  rt.device.queue.writeBuffer(buf, 0, bits);
  const x = new Tensor(new Storage(buf, 12), [n], 'f16');
  const y = E.relu(E.scale(x, 3));
  t.same(Array.from(fromHalfBits(await halfBitsOf(y))), data.map((v) => roundF16(Math.max(3 * v, 0))), 'unary_f16 with S = f16');
  const f = castTo(x, 'f32');
  t.same(Array.from(await f.read()), data, 'convert with scalar f16 input');
  x.dispose();
});

// ---- elementwise ops

const SIZES = [1, 3, 5, 1027];

interface UnaryCase {
  low: number;
  high: number;
  /** Largest error in f16 steps (0: the correctly rounded result). */
  ulps: number;
  op: (x: Tensor) => Tensor;
  f: (x: number) => number;
  /** dL/dx from the output gradient g, the input x and the (f16) output y. */
  grad: (g: number, x: number, y: number) => number;
  gradUlps: number;
}

const UNARY: Record<string, UnaryCase> = {
  relu: { low: -3, high: 3, ulps: 0, op: E.relu, f: (x) => Math.max(x, 0), grad: (g, x) => (x > 0 ? g : 0), gradUlps: 0 },
  neg: { low: -3, high: 3, ulps: 0, op: E.neg, f: (x) => -x, grad: (g) => -g, gradUlps: 0 },
  abs: { low: -3, high: 3, ulps: 0, op: E.abs, f: Math.abs, grad: (g, x) => g * Math.sign(x), gradUlps: 0 },
  square: { low: -300, high: 300, ulps: 0, op: E.square, f: (x) => x * x, grad: (g, x) => 2 * g * x, gradUlps: 0 },
  scale: { low: -100, high: 100, ulps: 1, op: (x) => E.scale(x, 0.3), f: (x) => x * Math.fround(0.3), grad: (g) => g * Math.fround(0.3), gradUlps: 1 },
  scalePow2: { low: -100, high: 100, ulps: 0, op: (x) => E.scale(x, 1024), f: (x) => x * 1024, grad: (g) => g * 1024, gradUlps: 0 },
  addScalar: { low: -100, high: 100, ulps: 0, op: (x) => E.addScalar(x, 1.5), f: (x) => x + 1.5, grad: (g) => g, gradUlps: 0 },
  exp: { low: -8, high: 8, ulps: 1, op: E.exp, f: Math.exp, grad: (g, _x, y) => g * y, gradUlps: 0 },
  log: { low: 0.01, high: 100, ulps: 1, op: E.log, f: Math.log, grad: (g, x) => g / x, gradUlps: 1 },
  sqrt: { low: 0.01, high: 100, ulps: 1, op: E.sqrt, f: Math.sqrt, grad: (g, _x, y) => (g * 0.5) / y, gradUlps: 1 },
  tanh: { low: -5, high: 5, ulps: 1, op: E.tanh, f: Math.tanh, grad: (g, _x, y) => g * (1 - y * y), gradUlps: 1 },
  sigmoid: { low: -10, high: 10, ulps: 1, op: E.sigmoid, f: (x) => 1 / (1 + Math.exp(-x)), grad: (g, _x, y) => g * y * (1 - y), gradUlps: 1 },
};

t.test('f16 unary ops and their gradients match float64 rounded to f16', async (t) => {
  let seed = 1;
  for (const [name, c] of Object.entries(UNARY)) {
    for (const n of SIZES) {
      const xs = halves(n, seed++, c.low, c.high);
      const gs = halves(n, seed++, -2, 2);
      const x = tensor(xs, [n], 'f16').requireGrad();
      const y = c.op(x);
      t.equal(y.dtype, 'f16', `${name} of f16 is f16`);
      const yBits = await halfBitsOf(y);
      const fwd = ulpError(yBits, xs.map(c.f));
      t.ok(fwd.worst <= c.ulps, `${name} [${n}] within ${c.ulps} f16 steps: worst ${fwd.worst} ${fwd.at}`);
      backward(y, { grad: tensor(gs, [n], 'f16') });
      t.equal(x.grad!.dtype, 'f16', `${name}'s gradient is f16`);
      const ys = Array.from(fromHalfBits(yBits));
      const bwd = ulpError(await halfBitsOf(x.grad!), gs.map((g, i) => c.grad(g, xs[i], ys[i])));
      t.ok(bwd.worst <= c.gradUlps, `${name} gradient [${n}] within ${c.gradUlps} f16 steps: worst ${bwd.worst} ${bwd.at}`);
      x.grad!.dispose();
      x.dispose();
    }
  }
});

interface BinaryCase {
  op: (a: Tensor, b: Tensor) => Tensor;
  f: (a: number, b: number) => number;
  ulps: number;
  da: (g: number, a: number, b: number) => number;
  db: (g: number, a: number, b: number) => number;
  /** b's values avoid (-0.5, 0.5) (a divisor). */
  awayFromZero?: boolean;
}

const BINARY: Record<string, BinaryCase> = {
  add: { op: E.add, f: (a, b) => a + b, ulps: 0, da: (g) => g, db: (g) => g },
  sub: { op: E.sub, f: (a, b) => a - b, ulps: 0, da: (g) => g, db: (g) => -g },
  mul: { op: E.mul, f: (a, b) => a * b, ulps: 0, da: (g, _a, b) => g * b, db: (g, a) => g * a },
  div: { op: E.div, f: (a, b) => a / b, ulps: 1, da: (g, _a, b) => g / b, db: (g, a, b) => (-g * a) / (b * b), awayFromZero: true },
  maximum: { op: E.maximum, f: Math.max, ulps: 0, da: (g, a, b) => (a >= b ? g : 0), db: (g, a, b) => (b > a ? g : 0) },
  minimum: { op: E.minimum, f: Math.min, ulps: 0, da: (g, a, b) => (a <= b ? g : 0), db: (g, a, b) => (b < a ? g : 0) },
};

// same shapes (vec4 kernels) and broadcasts both ways (the *_bcast_f16 kernels, f32 gradient sums)
const PAIRS: [number[], number[]][] = [[[1], [1]], [[5], [5]], [[1027], [1027]], [[3, 5], [5]], [[3, 1], [1, 5]], [[1], [3]]];

const index = (shape: number[], out: number[], i: number): number => {
  // offset in a tensor of `shape` (broadcast to `out`) of output element i
  let off = 0;
  let stride = 1;
  let rem = i;
  for (let k = out.length - 1; k >= 0; k--) {
    const c = rem % out[k];
    rem = Math.floor(rem / out[k]);
    const s = shape[k - (out.length - shape.length)] ?? 1;
    if (s !== 1) off += c * stride;
    stride *= s;
  }
  return off;
};

t.test('f16 binary ops and their gradients match float64 rounded to f16, broadcasting included', async (t) => {
  let seed = 100;
  for (const [name, c] of Object.entries(BINARY)) {
    for (const [sa, sb] of PAIRS) {
      const na = sa.reduce((p, d) => p * d, 1);
      const nb = sb.reduce((p, d) => p * d, 1);
      const out = sa.length >= sb.length ? sa.map((d, k) => Math.max(d, sb[k - (sa.length - sb.length)] ?? 1)) : sb.map((d, k) => Math.max(d, sa[k - (sb.length - sa.length)] ?? 1));
      const n = out.reduce((p, d) => p * d, 1);
      const as = halves(na, seed++, -20, 20);
      const bs = halves(nb, seed++, -20, 20).map((v) => (c.awayFromZero && Math.abs(v) < 0.5 ? v + (v < 0 ? -0.5 : 0.5) : v)).map(roundF16);
      const gs = halves(n, seed++, -2, 2);
      const a = tensor(as, sa, 'f16').requireGrad();
      const b = tensor(bs, sb, 'f16').requireGrad();
      const y = c.op(a, b);
      t.same(y.shape, out);
      const want = Array.from({ length: n }, (_, i) => c.f(as[index(sa, out, i)], bs[index(sb, out, i)]));
      const fwd = ulpError(await halfBitsOf(y), want);
      t.ok(fwd.worst <= c.ulps, `${name} [${sa}] [${sb}] within ${c.ulps} f16 steps: worst ${fwd.worst} ${fwd.at}`);
      backward(y, { grad: tensor(gs, out, 'f16') });
      // references: per-element gradients in float64, summed over the broadcast positions
      const wantA = new Array<number>(na).fill(0);
      const wantB = new Array<number>(nb).fill(0);
      const magA = new Array<number>(na).fill(0);
      const magB = new Array<number>(nb).fill(0);
      for (let i = 0; i < n; i++) {
        const ia = index(sa, out, i);
        const ib = index(sb, out, i);
        const da = c.da(gs[i], as[ia], bs[ib]);
        const db = c.db(gs[i], as[ia], bs[ib]);
        wantA[ia] += da;
        wantB[ib] += db;
        magA[ia] += Math.abs(da);
        magB[ib] += Math.abs(db);
      }
      for (const [x, want, mag, shape] of [[a, wantA, magA, sa], [b, wantB, magB, sb]] as const) {
        const got = await halfBitsOf(x.grad!);
        t.equal(x.grad!.dtype, 'f16');
        if (shape.reduce((p, d) => p * d, 1) === n) {
          // one value per element: exact ops exact, a division within one f16 step
          const e = ulpError(got, want);
          const tol = c.ulps === 0 ? 0 : 1;
          t.ok(e.worst <= tol, `${name} gradient [${shape}] within ${tol} f16 steps: worst ${e.worst} ${e.at}`);
        } else {
          // summed over broadcast positions: each per-element gradient is an f16 tensor (rounded
          // once, relative error 2^-11), then summed in f32 and rounded once more
          let worst = 0;
          for (let k = 0; k < want.length; k++) {
            const bound = 2 ** -11 * mag[k] * 1.01 + 2 ** -11 * Math.abs(want[k]) + 2 ** -24;
            worst = Math.max(worst, Math.abs(f16Value(got[k]) - want[k]) / bound);
          }
          t.ok(worst <= 1, `${name} gradient [${shape}] summed over broadcast positions: error ${worst.toFixed(2)} of its bound`);
        }
      }
      for (const x of [a, b]) {
        x.grad!.dispose();
        x.dispose();
      }
    }
  }
  t.throws(() => E.add(tensor([1], [1], 'f16'), tensor([1], [1])), /add: dtypes differ/);
});

// ---- sums

t.test('sum and mean of f16 accumulate in f32 and round once', async (t) => {
  const cases: { shape: number[]; axes?: number | number[] }[] = [
    { shape: [1027] },
    { shape: [3, 5000], axes: 1 }, // several passes: f16 in, f32 partial sums, f16 out
    { shape: [3, 5000], axes: 0 },
    { shape: [5, 3, 7], axes: [0, 2] }, // two runs of reduced axes
  ];
  let seed = 500;
  for (const c of cases) {
    const n = c.shape.reduce((p, d) => p * d, 1);
    const xs = halves(n, seed++, -1, 1);
    const x = tensor(xs, c.shape, 'f16');
    const axes = c.axes === undefined ? c.shape.map((_, k) => k) : typeof c.axes === 'number' ? [c.axes] : c.axes;
    const outShape = c.shape.filter((_, k) => !axes.includes(k));
    const m = outShape.reduce((p, d) => p * d, 1);
    const want = new Array<number>(m).fill(0);
    for (let i = 0; i < n; i++) {
      let rem = i;
      let o = 0;
      let stride = 1;
      for (let k = c.shape.length - 1; k >= 0; k--) {
        const coord = rem % c.shape[k];
        rem = Math.floor(rem / c.shape[k]);
        if (!axes.includes(k)) {
          o += coord * stride;
          stride *= c.shape[k];
        }
      }
      want[o] += xs[i];
    }
    const count = n / m;
    for (const [name, fn, scale] of [['sum', sum, 1], ['mean', mean, 1 / count]] as const) {
      const y = fn(x, c.axes);
      t.equal(y.dtype, 'f16', `${name} of f16 is f16`);
      const e = ulpError(await halfBitsOf(y), want.map((v) => v * scale));
      t.ok(e.worst <= 1, `${name} [${c.shape}] over ${JSON.stringify(c.axes ?? 'all')} within 1 f16 step: worst ${e.worst} ${e.at}`);
    }
  }
  // gradient of mean: g / count in every position (broadcast_f16)
  const x = tensor(halves(1027, 9, -1, 1), [1027], 'f16').requireGrad();
  backward(mean(x), { grad: tensor([3], [], 'f16') });
  const e = ulpError(await halfBitsOf(x.grad!), new Array(1027).fill(3 / 1027));
  t.ok(e.worst <= 1, `mean's gradient within 1 f16 step: ${e.worst} ${e.at}`);
});

// ---- the quantiser's code search on f16 rows

/**
 * Rows whose nearest code is clear in float64 (the best two distances differ by more than f32
 * rounding can move them) and that code, for z and the codebook as given (f16-exact z).
 */
function clearArgmins(z: ArrayLike<number>, e: ArrayLike<number>, n: number, k: number, d: number): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let second = Infinity;
    let bi = -1;
    let scale = 1;
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += (z[i * d + c] - e[j * d + c]) ** 2;
      let ee = 0;
      for (let c = 0; c < d; c++) ee += e[j * d + c] ** 2;
      scale = Math.max(scale, ee);
      if (s < best) [second, best, bi] = [best, s, j];
      else if (s < second) second = s;
    }
    if (second - best > 1e-5 * scale) out.set(i, bi);
  }
  return out;
}

t.test('nearestCode on f16 rows: the float64 argmin of the f16 values, every schedule', async (t) => {
  const sg = rt.caps.subgroups && rt.caps.subgroupMinSize === 8 && rt.caps.subgroupMaxSize === 8;
  for (const [n, k, d] of [[37, 19, 8], [203, 70, 64], [9, 5, 3], [70, 33, 6]]) {
    const zv = halves(n * d, n, -1, 1);
    const ev = new Rng(k).uniformArray(k * d, -1, 1);
    const want = clearArgmins(zv, ev, n, k, d);
    t.ok(want.size >= n * 0.9, `[${n}, ${d}] x ${k}: ${want.size} of ${n} rows have a clear nearest code`);
    const z = tensor(zv, [n, d], 'f16');
    const e = tensor(ev, [k, d]);
    for (const opts of [{ schedule: 'reg' as const, subgroups: false }, ...(sg ? [{ schedule: 'reg' as const, subgroups: true }] : []), { schedule: 'smem' as const }]) {
      const r = nearestCode(z, e, { ...opts, distances: true });
      const idx = (await r.indices.read()) as Uint32Array;
      const dist = (await r.distances!.read()) as Float32Array;
      const bad = [...want].filter(([i, j]) => idx[i] !== j);
      t.equal(bad.length, 0, `[${n}, ${d}] x ${k} ${JSON.stringify(opts)}: indices${bad.length ? `, first mismatch row ${bad[0][0]}: ${idx[bad[0][0]]} != ${bad[0][1]}` : ''}`);
      let worst = 0;
      for (const [i, j] of want) {
        let s = 0;
        for (let c = 0; c < d; c++) s += (zv[i * d + c] - ev[j * d + c]) ** 2;
        worst = Math.max(worst, Math.abs(dist[i] - s));
      }
      t.ok(worst <= 1e-4 * d, `distances in f32 (worst error ${worst.toExponential(2)})`);
      r.indices.dispose();
      r.distances!.dispose();
    }
    // The same values in f32 give the same codes, bit for bit.
    const z32 = tensor(zv, [n, d]);
    const a = (await nearestCode(z, e).indices.read()) as Uint32Array;
    const b = (await nearestCode(z32, e).indices.read()) as Uint32Array;
    t.same(Array.from(a), Array.from(b), `[${n}, ${d}] x ${k}: f16 rows and their f32 copy choose the same codes`);
    for (const x of [z, e, z32]) x.dispose();
  }
});

t.test('vectorQuantize on f16 rows: f32 losses and z_q as from the f32 copy; the gradient comes back f16', async (t) => {
  const [n, k, d] = [50, 12, 8];
  const zv = halves(n * d, 4, -1, 1);
  const ev = new Rng(5).uniformArray(k * d, -1, 1);
  const e = tensor(ev, [k, d]);
  const z16 = tensor(zv, [n, d], 'f16').requireGrad();
  const z32 = tensor(zv, [n, d]).requireGrad();
  const q16 = vectorQuantize(z16, e, { beta: 0.25 });
  const q32 = vectorQuantize(z32, e, { beta: 0.25 });
  t.equal(q16.zq.dtype, 'f32', 'z_q is f32');
  t.same(Array.from((await q16.indices.read()) as Uint32Array), Array.from((await q32.indices.read()) as Uint32Array), 'the same codes');
  t.equal(await q16.loss.item(), await q32.loss.item(), 'the same loss, bit for bit');
  backward(q16.loss);
  backward(q32.loss);
  t.equal(z16.grad!.dtype, 'f16', 'the gradient of f16 rows is f16');
  const g32 = (await z32.grad!.read()) as Float32Array;
  const u = ulpError((await halfBitsOf(z16.grad!)) as Uint16Array, g32);
  t.ok(u.worst <= 1, `the f16 gradient is the f32 one rounded (worst ${u.worst} f16 steps, ${u.at})`);
  t.throws(() => nearestCode(z16, tensor(ev, [k, d], 'f16')), /nearestCode: expected f32, got .*f16\[12, 8\]/, 'the codebook stays f32');
  for (const x of [e, z16, z32, q16.zq, q16.indices, q16.loss, q32.zq, q32.indices, q32.loss, z16.grad, z32.grad]) x?.dispose();
});

// ---- the model in f16, and the precision setting

t.test('VqVae forward in f16: f32 losses close to f32, gradients in f32 on the f32 weights', async (t) => {
  const model = new VqVae({ hidden: 16, residualHidden: 8, residualBlocks: 1, codebookSize: 16, embeddingDim: 8 }, { seed: 3 });
  const x = tensor(new Rng(1).uniformArray(2 * 3 * 16 * 16, -0.5, 0.5), [2, 3, 16, 16]);
  const run = async (precision: 'f32' | 'f16') => {
    const out = model.forward(x, { precision });
    const loss = await out.loss.item();
    t.equal(out.xHat.dtype, 'f32', `${precision}: the reconstruction is f32`);
    backward(out.loss);
    const grads = new Map<string, Float32Array>();
    for (const [name, p] of model.state) {
      if (!p.grad) continue;
      t.equal(p.grad.dtype, 'f32');
      grads.set(name, (await p.grad.read()) as Float32Array);
      p.grad.dispose();
      p.grad = null;
    }
    return { loss, grads, indices: Array.from(await out.indices.read()) };
  };
  const f32 = await run('f32');
  const f16 = await run('f16');
  t.ok(Math.abs(f16.loss - f32.loss) <= 1e-2 * f32.loss, `loss ${f16.loss} within 1% of f32's ${f32.loss}`);
  t.same([...f16.grads.keys()], [...f32.grads.keys()], 'the same parameters get gradients');
  for (const [name, g32] of f32.grads) {
    const g16 = f16.grads.get(name)!;
    let d = 0;
    let s = 0;
    for (let i = 0; i < g32.length; i++) {
      d += (g16[i] - g32[i]) ** 2;
      s += g32[i] ** 2;
    }
    t.ok(Math.sqrt(d) <= 0.05 * Math.sqrt(s) + 1e-7, `${name}: relative gradient difference ${(Math.sqrt(d / s) || 0).toExponential(2)}`);
  }
  model.dispose();
});

t.test('--precision: one table row (flag, help, validation), f16 refused without shader-f16', async (t) => {
  t.equal(parseTrainArgs(['--precision', 'f16']).given.precision, 'f16');
  t.throws(() => parseTrainArgs(['--precision', 'f8']), /--precision must be one of auto, f32, f16, got "f8"/);
  t.match(trainHelp(), /--precision X +f32, or f16 activations/);
  t.equal(resolveTrainConfig({}, { isCpu: true }).config.precision, 'auto', 'default auto');
  t.throws(
    () => resolveTrainConfig({ precision: 'f16' }, { isCpu: true, shaderF16: false }),
    /--precision f16 needs a device with shader-f16, which this device does not have \(use --precision f32 or auto\)/,
  );
  t.equal(resolveTrainConfig({ precision: 'f16' }, { isCpu: true, shaderF16: true }).config.precision, 'f16');
  t.equal(resolvePrecision('auto', { shaderF16: true }), 'f32', 'auto is f32 until f16 is measured faster');
  t.equal(resolvePrecision('f16', rt.caps), 'f16');
  t.equal(resolvePrecision('f32', { shaderF16: false }), 'f32');
});
