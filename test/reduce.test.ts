// Reductions and broadcasting against float64 CPU references: awkward shapes and axis sets,
// long axes that take several passes, accuracy on large sums, ties, gradients, errors.
import t from 'tap';
import { assertClose, gpu, gradcheck, sumTolerance } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { type Tensor, full, share, tensor } from '../engine/tensor.js';
import * as R from '../engine/reduce.js';
import { refExpand, size, values, type Shape } from './ref/elementwise.js';
import { refArg, refSum } from './ref/reduce.js';
import { ARG_CASES, SUM_CASES, type Axes } from './cases/reduce.js';

await gpu(t);

const read = async (x: Tensor) => Float64Array.from(await x.read());

t.test('sum and mean match float64 over every kind of axis set', async (t) => {
  let seed = 1;
  for (const [shape, axesList] of SUM_CASES) {
    const data = values(size(shape), seed++, -1, 1);
    const x = tensor(data, shape);
    for (const axes of axesList) {
      for (const keepDims of [false, true]) {
        for (const op of ['sum', 'mean'] as const) {
          const y = R[op](x, axes, keepDims);
          const want = refSum(data, shape, axes, op === 'mean');
          const label = `${op} [${shape}] axes ${JSON.stringify(axes)} keepDims ${keepDims}`;
          t.same(y.shape, keepDims ? want.kept : want.dropped, `${label}: shape`);
          const terms = size(shape) / Math.max(1, size(want.dropped));
          assertClose(t, await read(y), want.data, sumTolerance(terms, op === 'mean'), label);
          y.dispose();
        }
      }
    }
    x.dispose();
  }
});

t.test('large sums are accurate (tree order) and deterministic', async (t) => {
  // 1M positive values against float64 with rtol 1e-5 (a single running f32 sum is off by 7e-6
  // here, and by 2% on the 4M equal values below)
  const n = 1 << 20;
  const data = values(n, 77, 0, 1);
  let ref = 0;
  for (const v of data) ref += v;
  const x = tensor(data, [n]);
  const s1 = await R.sum(x).item();
  t.ok(Math.abs(s1 - ref) <= 1e-5 * ref, `sum of 1M: ${s1} vs ${ref}`);
  const m = await R.mean(x).item();
  t.ok(Math.abs(m - ref / n) <= 1e-5 * (ref / n), `mean of 1M: ${m} vs ${ref / n}`);
  const s2 = await R.sum(x).item();
  t.equal(s2, s1, 'the same sum twice is bit-identical');
  // 4M equal values: the worst case for a sequential sum, exact enough for a tree
  const c = full([1 << 22], 0.1);
  const sc = await R.sum(c).item();
  const want = (1 << 22) * Math.fround(0.1);
  t.ok(Math.abs(sc - want) <= 1e-5 * want, `sum of 4M x 0.1: ${sc} vs ${want}`);
  c.dispose();
  x.dispose();
});

t.test('mean over the batch of [65536, 64] and over NCHW bias axes', async (t) => {
  const shape = [65536, 64];
  const data = values(size(shape), 5, -1, 3);
  const x = tensor(data, shape);
  assertClose(t, await read(R.mean(x, 0)), refSum(data, shape, 0, true).data, { rtol: 1e-5, atol: 1e-6 }, 'mean over 65536 rows');
  assertClose(t, await read(R.sum(x, 1)), refSum(data, shape, 1).data, { rtol: 1e-5, atol: 1e-5 }, 'sum over 64 columns');
  x.dispose();
  const nchw = [8, 16, 9, 11];
  const d2 = values(size(nchw), 6, 0, 1);
  const y = tensor(d2, nchw);
  const got = R.sum(y, [0, 2, 3]);
  t.same(got.shape, [16]);
  assertClose(t, await read(got), refSum(d2, nchw, [0, 2, 3]).data, { rtol: 1e-5, atol: 1e-6 }, 'sum over N, H, W');
});

t.test('empty tensors and empty axes', async (t) => {
  const e = full([0, 3], 1);
  const s = R.sum(e, 0);
  t.same(s.shape, [3]);
  t.same([...(await s.read())], [0, 0, 0], 'sum over an empty axis is 0');
  t.ok([...(await R.mean(e, 0).read())].every(Number.isNaN), 'mean over an empty axis is NaN');
  t.same(R.sum(e, 1).shape, [0], 'nothing to reduce into');
  t.throws(() => R.max(e, 0), /max: cannot reduce an empty axis of Tensor #\d+ f32\[0, 3\]/);
});

t.test('max, argmax and argmin match float64, with ties to the lowest index', async (t) => {
  let seed = 100;
  for (const [shape, axes] of ARG_CASES) {
    // values on a coarse grid: plenty of ties, also across the chunks of long axes
    const data = values(size(shape), seed++, -4, 4).map((v) => Math.round(v * 2) / 2);
    const x = tensor(data, shape);
    for (const axis of axes) {
      for (const keepDims of [false, true]) {
        const label = `[${shape}] axis ${axis} keepDims ${keepDims}`;
        const mx = refArg(data, shape, axis, 'max');
        const mn = refArg(data, shape, axis, 'min');
        const v = R.max(x, axis, keepDims);
        const ia = R.argmax(x, axis, keepDims);
        const ib = R.argmin(x, axis, keepDims);
        const k = axis === undefined ? -1 : axis < 0 ? axis + shape.length : axis;
        const outShape = axis === undefined
          ? (keepDims ? shape.map(() => 1) : [])
          : keepDims ? shape.map((d, i) => (i === k ? 1 : d)) : shape.filter((_, i) => i !== k);
        t.same([v.shape, ia.shape, ib.shape], [outShape, outShape, outShape], `${label}: shapes`);
        t.equal(ia.dtype, 'u32');
        assertClose(t, await read(v), mx.values, { rtol: 0, atol: 0 }, `max ${label}`);
        t.same([...(await ia.read())], [...mx.indices], `argmax ${label}`);
        t.same([...(await ib.read())], [...mn.indices], `argmin ${label}`);
      }
    }
    x.dispose();
  }
});

t.test('ties far apart on a long axis resolve to the lowest index', async (t) => {
  const n = 100003;
  const data = new Float32Array(n).fill(1);
  for (const i of [99999, 5000, 70000]) data[i] = 7;
  for (const i of [80000, 60001]) data[i] = -7;
  const x = tensor(data);
  t.equal(await R.argmax(x).item(), 5000);
  t.equal(await R.argmin(x, 0).item(), 60001);
  t.equal(await R.max(x).item(), 7);
  const ones = full([3, 300], 2);
  t.same([...(await R.argmax(ones, 1).read())], [0, 0, 0], 'all equal: index 0');
});

t.test('2-D grids: max over axis 0 of [2, 8388611] and its gradient (16.8M elements)', async (t) => {
  // the gradient kernel runs one invocation per input element: more than 65535 workgroups
  const cols = 8388611;
  const data = new Float32Array(2 * cols);
  for (let i = 0; i < cols; i++) {
    data[i] = i % 3; // row 0
    data[cols + i] = i % 5 === 0 ? 2 : 1; // row 1: ties with row 0 where both are 2
  }
  const x = tensor(data, [2, cols]).requireGrad();
  const y = R.max(x, 0);
  backward(y, { grad: full([cols], 1) });
  const v = await y.read();
  const g = await x.grad!.read();
  let bad = -1;
  for (let i = 0; i < cols && bad < 0; i++) {
    const a = data[i];
    const b = data[cols + i];
    const first = b > a ? 1 : 0;
    if (v[i] !== Math.max(a, b) || g[i] !== (first === 0 ? 1 : 0) || g[cols + i] !== first) bad = i;
  }
  t.equal(bad, -1, `values and gradients right in every column (first wrong: ${bad})`);
  // argmax over a length-1 axis: one invocation per output, 16.8M of them
  const flat = share(x, [1, 2 * cols]);
  const idx = await R.argmax(flat, 0).read();
  t.ok(idx.length === 2 * cols && idx.every((i) => i === 0), 'argmax over a length-1 axis is all 0');
  x.grad!.dispose();
  x.dispose();
  flat.dispose();
});

t.test('expand and sumToShape', async (t) => {
  const cases: [Shape, Shape][] = [
    [[3, 1], [2, 3, 4]],
    [[], [5]],
    [[1], [2, 3]],
    [[4], [3, 4]],
    [[2, 1, 3], [2, 5, 3]],
    [[7], [7]],
  ];
  for (const [from, to] of cases) {
    const data = values(size(from), size(to), -1, 1);
    const x = tensor(data, from);
    const y = R.expand(x, to);
    t.same(y.shape, to);
    assertClose(t, await read(y), refExpand(data, from, to), { rtol: 0, atol: 0 }, `expand [${from}] -> [${to}]`);
    const big = values(size(to), 3, -1, 1);
    const s = R.sumToShape(tensor(big, to), from);
    t.same(s.shape, from);
    const lead = to.length - from.length;
    const axes = to.map((d, k) => k).filter((k) => k < lead || (from[k - lead] === 1 && to[k] !== 1));
    assertClose(t, await read(s), refSum(big, to, axes).data, { rtol: 1e-6, atol: 1e-6 }, `sumToShape [${to}] -> [${from}]`);
  }
  t.throws(() => R.expand(tensor([1, 2], [2]), [3]), { message: 'expand: shapes [2] and [3] do not broadcast' });
  t.throws(() => R.expand(tensor([1, 2, 3, 4, 5, 6], [2, 3]), [3]), { message: 'expand: shape [2, 3] does not broadcast to [3]' });
  t.throws(() => R.sumToShape(tensor([1, 2, 3], [3]), [2]), { message: 'sumToShape: shape [3] cannot be summed to [2]' });
});

t.test('errors name the op, the axis and the shape', async (t) => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  t.throws(() => R.sum(x, 2), { message: 'sum: axis 2 is out of range for shape [2, 3]' });
  t.throws(() => R.mean(x, [0, -2]), /mean: axis -2 is repeated/);
  t.throws(() => R.argmax(x, -3), { message: 'argmax: axis -3 is out of range for shape [2, 3]' });
  t.throws(() => R.max(x, 0.5), /max: axis 0.5 is out of range/);
  const i = tensor([1, 2, 3], [3], 'i32');
  t.throws(() => R.sum(i), /sum: expected f32 or f16, got Tensor #\d+ i32\[3\]/);
  t.throws(() => R.argmin(i, 0), /argmin: expected f32/);
});

// ---- gradients

t.test('gradcheck: sum and mean over several axis sets', async (t) => {
  const shape = [2, 3, 4];
  const data = values(size(shape), 9);
  const sets: Axes[] = [undefined, 0, [1, 2], [0, 2], -1, []];
  for (const axes of sets) {
    for (const keepDims of [false, true]) {
      for (const op of ['sum', 'mean'] as const) {
        const fails = await gradcheck(([x]) => R[op](x, axes, keepDims), [{ data, shape }], { elementwiseUpTo: 0 });
        t.same(fails, [], `${op} axes ${JSON.stringify(axes)} keepDims ${keepDims}`);
      }
    }
  }
  t.same(await gradcheck(([x]) => R.sum(x), [{ data: new Float32Array([2.5]), shape: [] }]), [], 'sum of a scalar');
});

t.test('gradcheck: max, expand, sumToShape', async (t) => {
  // distinct values at least 0.1 apart so no perturbation of 1e-2 changes the argmax
  const shape = [3, 4, 2];
  const data = Float32Array.from(values(24, 4).map((_, i) => ((i * 7) % 24) / 10 - 1.2));
  for (const axis of [0, 1, 2, -1, undefined]) {
    t.same(await gradcheck(([x]) => R.max(x, axis), [{ data, shape }]), [], `max axis ${axis}`);
  }
  t.same(await gradcheck(([x]) => R.max(x, 1, true), [{ data, shape }]), [], 'max keepDims');
  t.same(await gradcheck(([x]) => R.expand(x, [2, 3, 4]), [{ data: values(3, 1), shape: [3, 1] }]), [], 'expand');
  t.same(await gradcheck(([x]) => R.sumToShape(x, [3, 1]), [{ data: values(24, 2), shape: [2, 3, 4] }]), [], 'sumToShape');
});

t.test('max sends the gradient to the first of tied maxima', async (t) => {
  const x = tensor([1, 3, 3, 2, 0, 0, -1, 0], [2, 4]).requireGrad();
  backward(R.max(x, 1), { grad: tensor([10, 20]) });
  t.same([...(await x.grad!.read())], [0, 10, 0, 0, 20, 0, 0, 0]);
});
