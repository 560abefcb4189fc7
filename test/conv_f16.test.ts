// conv2d and convTranspose2d on f16 storage (issue #23 item 4): each pass (forward, input,
// weight and bias gradients; transposed too) of the seed layers at batch 1 on small maps and of
// the awkward shapes, under both schedules, against the float64 references of test/ref/conv.ts
// fed the same f16-rounded inputs. f16 outputs (y, dx) may differ by their f16 rounding plus f32
// accumulation; f32 outputs (dW, db) by f32 accumulation only. Plus the f16 plans as data and
// the one-line errors for mixed element types. Runs on lavapipe, which has shader-f16.
import t from 'tap';
import { compare, gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import * as C from '../engine/conv.js';
import { withFlags } from '../engine/flags.js';
import { FLAG_SPECS, type Flags } from '../engine/flags.js';
import { fromHalfBits, roundF16 } from '../engine/half.js';
import { type Tensor, tensor } from '../engine/tensor.js';
import { AWKWARD, SEED, applyConv, makeData, reference, small, wShape, type ConvCase, type ConvData } from './cases/conv.js';
import { LAVAPIPE_CAPS } from './plans/caps.js';

await gpu(t);

const SCHEDULES: C.ConvSchedule[] = ['reg', 'smem'];
const DEFAULTS = Object.fromEntries(Object.entries(FLAG_SPECS).map(([k, v]) => [k, v.default])) as Flags;

const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/** The case's data with every value rounded to f16 (the reference sees what the kernels read). */
function halfData(d: ConvData): ConvData {
  const h = (a: Float32Array) => Float32Array.from(a, roundF16);
  return { ...d, x: h(d.x), w: h(d.w), b: d.b && h(d.b), dy: h(d.dy) };
}

/** Values of an f32 or f16 tensor. */
async function values(x: Tensor): Promise<Float32Array> {
  const v = await x.read();
  return x.dtype === 'f16' ? fromHalfBits(v as Uint16Array) : (v as Float32Array);
}

type Assert = { ok: (v: unknown, msg: string) => unknown; equal: (a: unknown, b: unknown, msg: string) => unknown };

/**
 * An f16 output: its rounding (half an f16 step, 2^-11 relative) plus f32 accumulation, within
 * two f16 steps of the output's scale or one of the value.
 */
function closeF16(t: Assert, got: Tensor, gotValues: Float32Array, want: ArrayLike<number>, what: string): void {
  t.equal(got.dtype, 'f16', `${what}: stored as f16`);
  const r = compare(gotValues, want, { rtol: 2 ** -10, atol: 2 ** -9 * Math.max(maxAbs(want), 1e-3) });
  t.ok(r.ok, `${what}: ${r.worst}`);
}

/** An f32 output summed in f32 from f16 inputs: f32 accumulation only (conv.test.ts's tolerance). */
function closeF32(t: Assert, got: Tensor, gotValues: Float32Array, want: ArrayLike<number>, what: string): void {
  t.equal(got.dtype, 'f32', `${what}: stored as f32`);
  const r = compare(gotValues, want, { rtol: 1e-4, atol: 2e-5 * Math.max(maxAbs(want), 1e-3) });
  t.ok(r.ok, `${what}: ${r.worst}`);
}

/** Forward and all gradients of case c in f16 through the autograd API, against float64. */
async function checkCase(t: Assert, c: ConvCase, seed: number, label: string): Promise<void> {
  const d = halfData(makeData(c, seed));
  const ref = reference(c, d);
  const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW], 'f16').requireGrad();
  const w = tensor(d.w, wShape(c), 'f16').requireGrad();
  const b = d.b ? tensor(d.b, [c.CO], 'f16').requireGrad() : null;
  const y = applyConv(c, x, w, b);
  closeF16(t, y, await values(y), ref.y, `${label}: forward`);
  const dy = tensor(d.dy, d.yShape, 'f16');
  backward(y, { grad: dy });
  closeF16(t, x.grad!, await values(x.grad!), ref.dx, `${label}: input gradient`);
  closeF32(t, w.grad!, await values(w.grad!), ref.dw, `${label}: weight gradient`);
  if (b) closeF32(t, b.grad!, await values(b.grad!), ref.db, `${label}: bias gradient`);
  for (const v of [x, w, b, y, dy, x.grad, w.grad, b?.grad]) v?.dispose();
}

for (const sched of SCHEDULES) {
  t.test(`f16 seed layers (batch 1, small maps) match float64, ${sched} schedule`, async (t) => {
    await withFlags({ convSchedule: sched }, async () => {
      for (const [i, c0] of SEED.entries()) {
        const c = { ...small(c0), B: 1, relu: c0.relu };
        await checkCase(t, c, 100 + 10 * i, `${c.name} (${c.IH}x${c.IW})`);
      }
    });
  });

  t.test(`f16 awkward shapes match float64, ${sched} schedule`, async (t) => {
    await withFlags({ convSchedule: sched }, async () => {
      for (const [i, c] of AWKWARD.entries()) await checkCase(t, c, 500 + 10 * i, c.name);
    });
  });
}

t.test('f16 plans: the element type is data; f16 repacks its weights and takes no textures', async (t) => {
  const g = C.conv2dGeometry([32, 128, 16, 16], [128, 128, 3, 3], { stride: 1, padding: 1 });
  const f32 = C.describeConvPlan(C.planConv('fwd', g, false, LAVAPIPE_CAPS, DEFAULTS));
  const f16 = C.describeConvPlan(C.planConv('fwd', g, false, LAVAPIPE_CAPS, DEFAULTS, undefined, 'f16'));
  t.equal(f16, `${f32} f16`, 'enc3 forward: the f32 plan, marked f16');
  const wg32 = C.describeConvPlan(C.planConv('wgrad', g, false, LAVAPIPE_CAPS, DEFAULTS));
  const wg16 = C.describeConvPlan(C.planConv('wgrad', g, false, LAVAPIPE_CAPS, DEFAULTS, undefined, 'f16'));
  t.match(wg32, /tex/, 'enc3 weight gradient in f32 reads A through a texture');
  t.notMatch(wg16, /tex/, 'in f16 it does not (the textures are rgba32float copies)');
  t.match(wg16, / f16$/, 'and is marked f16');
  // A 1x1 conv reads its f32 weights as they are; f16 weights go through the pack (to f32).
  const one = C.conv2dGeometry([8, 32, 16, 16], [128, 32, 1, 1], {});
  const p32 = C.planConv('fwd', one, false, LAVAPIPE_CAPS, DEFAULTS);
  const p16 = C.planConv('fwd', one, false, LAVAPIPE_CAPS, DEFAULTS, undefined, 'f16');
  t.match(C.describeConvPlan(p32), /w:as-is/, '1x1 f32: weights as they are');
  t.match(C.describeConvPlan(p16), /w:pack/, '1x1 f16: weights repacked');
  const smem = C.planConv('dgrad', one, false, LAVAPIPE_CAPS, DEFAULTS, 'smem', 'f16');
  t.equal(C.describeConvPlan(smem), 'smem D1 f16', 'smem plans carry the element type too');
});

t.test('mixed element types are refused with a one-line error', async (t) => {
  const x = tensor(new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4], 'f16');
  const w32 = tensor(new Float32Array(5 * 3 * 3 * 3), [5, 3, 3, 3]);
  const w16 = tensor(new Float32Array(5 * 3 * 3 * 3), [5, 3, 3, 3], 'f16');
  const b32 = tensor(new Float32Array(5), [5]);
  t.throws(() => C.conv2d(x, w32), /conv2d: expected f16, got .*f32\[5, 3, 3, 3\]/, 'f16 input, f32 weight');
  t.throws(() => C.conv2d(x, w16, b32), /conv2d: expected f16, got .*f32\[5\]/, 'f16 input, f32 bias');
  const xi = tensor(new Int32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
  t.throws(() => C.conv2d(xi, w16), /conv2d: expected f32, got .*i32/, 'an i32 input');
  for (const v of [x, w32, w16, b32, xi]) v.dispose();
});

t.test('an f16 copy of an f32 weight takes the conv weight gradient as it is (f32, no cast back)', async (t) => {
  const { castTo } = await import('../engine/cast.js');
  const { rt } = await import('../engine/runtime.js');
  const { tidy } = await import('../engine/tensor.js');
  const w = tensor(Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => roundF16(Math.sin(i))), [4, 3, 3, 3]).requireGrad();
  const x = tensor(Array.from({ length: 2 * 3 * 5 * 5 }, (_, i) => roundF16(Math.cos(i))), [2, 3, 5, 5], 'f16');
  const r = rt();
  const kernels: string[] = [];
  const dispatch = r.dispatch.bind(r);
  r.dispatch = (k, ...rest) => {
    kernels.push(k.name);
    dispatch(k, ...rest);
  };
  try {
    tidy(() => {
      const y = C.conv2d(x, castTo(w, 'f16'), null, { padding: 1 });
      backward(castTo(y, 'f32'), { grad: tensor(new Array(2 * 4 * 5 * 5).fill(1), [2, 4, 5, 5]) });
    });
  } finally {
    r.dispatch = dispatch;
  }
  t.equal(w.grad?.dtype, 'f32');
  t.equal(kernels.filter((k) => k === 'cast.convert').length, 3, 'the casts of w and y forward, of the gradient of y back: none for the weight gradient');
  const want = await tidy(() => {
    const ref = tensor(Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => roundF16(Math.sin(i))), [4, 3, 3, 3], 'f16').requireGrad();
    const y = C.conv2d(x, ref, null, { padding: 1 });
    backward(castTo(y, 'f32'), { grad: tensor(new Array(2 * 4 * 5 * 5).fill(1), [2, 4, 5, 5]) });
    return ref.grad!;
  }).read();
  t.same(Array.from((await w.grad!.read()) as Float32Array), Array.from(want as Float32Array), 'the same values as the f16 weight\'s own gradient');
});
