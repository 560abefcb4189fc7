// Shape and indexing ops: reshape, flatten, permute, transpose, slice, concat, gather, their
// gradients, against float64 CPU references (test/ref/shape.ts). Data movement must be exact
// (tolerance 0); gather's backward sums in f32, so it gets rtol 1e-5.
import t from 'tap';
import { assertClose, compare, gpu, gradcheck, randomArray } from './helpers.js';
import { Rng } from '../engine/random.js';
import { backward } from '../engine/autograd.js';
import { type Tensor, tensor } from '../engine/tensor.js';
import { GATHER_SEGMENT, concat, flatten, gather, gatherBackward, nchwToNhwc, nhwcToNchw, permute, reshape, slice, transpose } from '../engine/shape.js';
import { f32GatherBackwardRows, refConcat, refGather, refGatherBackward, refPad, refPermute, refSlice, size } from './ref/shape.js';

await gpu(t);
const rng = new Rng(2024);
const EXACT = { rtol: 0, atol: 0 };

const rand = (shape: number[]) => randomArray(rng, size(shape));

/** Runs backward of `out` with a random upstream gradient; returns it and x's gradient. */
async function vjp(x: Tensor, out: Tensor): Promise<{ g: Float32Array; dx: Float32Array }> {
  const g = rand([...out.shape]);
  const gt = tensor(g, out.shape);
  backward(out, { grad: gt });
  gt.dispose();
  const dx = (await x.grad!.read()) as Float32Array;
  return { g, dx };
}

t.test('reshape: a view with -1 inference, gradient reshapes back', async (t) => {
  const xd = rand([2, 3, 5]);
  const x = tensor(xd, [2, 3, 5]).requireGrad();
  const y = reshape(x, [5, -1]);
  t.same(y.shape, [5, 6]);
  t.equal(y.buffer, x.buffer, 'shares storage (no copy)');
  t.same(await y.read(), xd);
  t.same(reshape(x, [30]).shape, [30]);
  t.same(reshape(x, [1, 30, 1]).shape, [1, 30, 1]);
  t.same(reshape(tensor([7], []), [1, 1]).shape, [1, 1]);
  t.same(reshape(tensor([7], [1, 1]), []).shape, []);
  t.same(flatten(x).shape, [30]);
  t.same(flatten(x, 1).shape, [2, 15]);
  t.same(flatten(tensor(rand([2, 3, 4, 5]), [2, 3, 4, 5]), 1, 2).shape, [2, 12, 5]);
  const { g, dx } = await vjp(x, y);
  assertClose(t, dx, g, EXACT, 'gradient');
  t.same(x.grad!.shape, [2, 3, 5]);
  x.grad!.dispose();
});

t.test('permute matches the reference on ranks 1..6 (identity, reversal, random)', async (t) => {
  const shapes = [[7], [1], [3, 5], [1, 4], [2, 1, 3], [3, 5, 7], [2, 3, 1, 5], [1, 7, 3, 2, 5], [2, 3, 2, 1, 3, 2], [4, 1, 3, 1]];
  let checked = 0;
  for (const shape of shapes) {
    const r = shape.length;
    const perms = [shape.map((_, k) => k), shape.map((_, k) => r - 1 - k), [...rng.permutation(r)]];
    const xd = rand(shape);
    const x = tensor(xd, shape);
    for (const perm of perms) {
      const y = permute(x, perm);
      t.same(y.shape, perm.map((d) => shape[d]));
      const c = compare(await y.read(), refPermute(xd, shape, perm), EXACT);
      t.ok(c.ok, `permute [${shape}] by [${perm}]: ${c.worst}`);
      y.dispose();
      checked++;
    }
    x.dispose();
  }
  // several 32x32 tiles with ragged edges, with and without batch dims (the tiled path)
  for (const [shape, perm] of [
    [[37, 70], [1, 0]],
    [[2, 33, 5, 65], [0, 3, 2, 1]],
    [[3, 37, 9, 11], [0, 2, 3, 1]],
    [[3, 9, 11, 37], [0, 3, 1, 2]],
    [[5, 2, 64, 3], [3, 2, 1, 0]],
  ] as [number[], number[]][]) {
    const xd = rand(shape);
    const y = permute(tensor(xd, shape), perm);
    const c = compare(await y.read(), refPermute(xd, shape, perm), EXACT);
    t.ok(c.ok, `permute [${shape}] by [${perm}]: ${c.worst}`);
    checked++;
  }
  // negative dims and integer dtypes move unchanged
  const xi = tensor(Int32Array.from({ length: 30 }, (_, i) => i - 15), [2, 3, 5]);
  const yi = permute(xi, [-1, 0, 1]);
  t.equal(yi.dtype, 'i32');
  t.same([...(await yi.read())], [...refPermute(await xi.read(), [2, 3, 5], [2, 0, 1])]);
  t.equal(checked, 35);
});

t.test('transpose and NCHW <-> NHWC', async (t) => {
  const shape = [2, 3, 5, 7];
  const xd = rand(shape);
  const x = tensor(xd, shape);
  const y = transpose(x, 1, -1);
  assertClose(t, await y.read(), refPermute(xd, shape, [0, 3, 2, 1]), EXACT, 'transpose(1, -1)');
  const nhwc = nchwToNhwc(x);
  t.same(nhwc.shape, [2, 5, 7, 3]);
  assertClose(t, await nhwc.read(), refPermute(xd, shape, [0, 2, 3, 1]), EXACT, 'nchwToNhwc');
  const back = nhwcToNchw(nhwc);
  assertClose(t, await back.read(), xd, EXACT, 'round trip');
  t.throws(() => nchwToNhwc(tensor([1, 2], [2])), /nchwToNhwc: expected a rank-4 tensor, got shape \[2\]/);
});

t.test('slice matches the reference (empty, edge, negative, partial ranges)', async (t) => {
  const cases: [number[], number[], number[]][] = [
    [[7], [0], [7]],
    [[7], [6], [7]],
    [[7], [3], [3]], // empty
    [[5, 3], [1, 0], [4, 3]],
    [[5, 3], [0, 2], [5, 3]],
    [[5, 3], [-2, -3], [5, -1]],
    [[2, 1, 7], [1, 0, 2], [2, 1, 5]],
    [[3, 4, 5, 2], [0, 1, 1, 0], [3, 3, 4, 1]],
    [[3, 4, 5, 2], [1, 1, 1, 1], [1, 4, 5, 2]], // empty in the first axis
    [[2, 3, 1, 5, 3], [1, 1, 0, 2, 0], [2, 3, 1, 5, 2]],
  ];
  for (const [shape, s, e] of cases) {
    const xd = rand(shape);
    const x = tensor(xd, shape);
    const y = slice(x, s, e);
    const abs = (v: number, k: number) => (v < 0 ? v + shape[k] : v);
    const ref = refSlice(xd, shape, s.map(abs), e.map(abs));
    t.same(y.shape, ref.shape, `shape of [${shape}][${s}:${e}]`);
    assertClose(t, await y.read(), ref.data, EXACT, `slice [${shape}] ${s}:${e}`);
  }
  // fewer bounds than dims: trailing axes whole
  const x = tensor(rand([4, 3]), [4, 3]);
  t.same(slice(x, [1], [3]).shape, [2, 3]);
  t.throws(() => slice(x, [0, 2], [4, 4]), /slice: range 2:4 is out of bounds for axis 1 of shape \[4, 3\]/);
  t.throws(() => slice(x, [3], [2]), /out of bounds for axis 0/);
});

t.test('slice backward pads the gradient with zeros', async (t) => {
  for (const [shape, s, e] of [
    [[5, 4, 3], [1, 0, 1], [4, 3, 3]],
    [[6], [2], [2]],
    [[2, 3], [0, 0], [2, 3]],
  ] as [number[], number[], number[]][]) {
    const x = tensor(rand(shape), shape).requireGrad();
    const y = slice(x, s, e);
    const { g, dx } = await vjp(x, y);
    assertClose(t, dx, refPad(g, [...y.shape], shape, s), EXACT, `pad of [${shape}] ${s}:${e}`);
    x.grad!.dispose();
  }
});

t.test('concat of three tensors on every axis matches the reference', async (t) => {
  for (const base of [[5], [2, 3], [3, 1, 4], [2, 3, 1, 2]]) {
    for (let axis = 0; axis < base.length; axis++) {
      const sizes = [base[axis], 1, 3];
      const shapes = sizes.map((n) => base.map((d, k) => (k === axis ? n : d)));
      const datas = shapes.map((s) => rand(s));
      const xs = datas.map((d, i) => tensor(d, shapes[i]));
      const y = concat(xs, axis);
      const ref = refConcat(datas, shapes, axis);
      t.same(y.shape, ref.shape);
      assertClose(t, await y.read(), ref.data, EXACT, `concat [${base}] axis ${axis}`);
      // the same with a negative axis and an empty member
      const empty = tensor([], base.map((d, k) => (k === axis ? 0 : d)));
      const y2 = concat([xs[0], empty, xs[1], xs[2]], axis - base.length);
      assertClose(t, await y2.read(), ref.data, EXACT, `concat [${base}] axis ${axis - base.length} with an empty member`);
    }
  }
  const xi = concat([tensor(new Uint32Array([1, 2])), tensor(new Uint32Array([4294967295]))], 0);
  t.same([...(await xi.read())], [1, 2, 4294967295]);
});

t.test('concat backward slices the gradient (only for inputs that need it)', async (t) => {
  const shapes = [[2, 3, 2], [2, 1, 2], [2, 4, 2]];
  const xs = shapes.map((s) => tensor(rand(s), s));
  xs[0].requireGrad();
  xs[2].requireGrad();
  const y = concat(xs, 1);
  const g = rand([...y.shape]);
  backward(y, { grad: tensor(g, y.shape) });
  t.equal(xs[1].grad, null);
  const d0 = await xs[0].grad!.read();
  const d2 = await xs[2].grad!.read();
  assertClose(t, d0, refSlice(g, [2, 8, 2], [0, 0, 0], [2, 3, 2]).data, EXACT, 'grad of the first');
  assertClose(t, d2, refSlice(g, [2, 8, 2], [0, 4, 0], [2, 8, 2]).data, EXACT, 'grad of the last');
});

t.test('gather on axis 0, 1 and last with repeated, multi-dim and out-of-range indices', async (t) => {
  const cases: { shape: number[]; idx: number[]; idxShape: number[]; axis: number; dtype: 'i32' | 'u32' }[] = [
    { shape: [7], idx: [3, 3, 0, 6, 3], idxShape: [5], axis: 0, dtype: 'i32' },
    { shape: [5, 3], idx: [4, 0, 4, 2], idxShape: [4], axis: 0, dtype: 'u32' },
    { shape: [5, 3], idx: [2, 2, 0, 1, 2, 0], idxShape: [2, 3], axis: 1, dtype: 'i32' },
    { shape: [2, 5, 3], idx: [4, 1, 1], idxShape: [3], axis: 1, dtype: 'u32' },
    { shape: [2, 3, 1, 5], idx: [4, 0, 0, 3, 4, 2, 1], idxShape: [7], axis: -1, dtype: 'i32' },
    { shape: [3, 1, 4], idx: [0, 0], idxShape: [1, 2], axis: 1, dtype: 'u32' },
    { shape: [4, 2], idx: [], idxShape: [0], axis: 0, dtype: 'i32' },
    { shape: [6, 2], idx: [1], idxShape: [], axis: 0, dtype: 'i32' }, // a scalar index drops the axis
    // out of range: clamped (negative i32 -> 0, too large -> last)
    { shape: [4, 3], idx: [-1, 4, 2, -2147483648, 2147483647], idxShape: [5], axis: 0, dtype: 'i32' },
    { shape: [4, 3], idx: [4294967295, 3, 7], idxShape: [3], axis: 1, dtype: 'u32' },
  ];
  for (const c of cases) {
    const xd = rand(c.shape);
    const x = tensor(xd, c.shape);
    const idx = tensor(c.idx, c.idxShape, c.dtype);
    const axis = c.axis < 0 ? c.axis + c.shape.length : c.axis;
    const y = gather(x, idx, c.axis);
    const ref = refGather(xd, c.shape, c.idx, c.idxShape, axis);
    t.same(y.shape, ref.shape, `shape of gather [${c.shape}] axis ${c.axis}`);
    assertClose(t, await y.read(), ref.data, EXACT, `gather [${c.shape}] axis ${c.axis} idx [${c.idx}] ${c.dtype}`);
  }
  // gathering integer data
  const xi = tensor(new Int32Array([10, -20, 30]));
  t.same([...(await gather(xi, tensor([2, 0, 2], [3], 'u32')).read())], [30, 10, 30]);
});

t.test('gather backward: segment sums match the reference and repeat bit for bit', async (t) => {
  const cases: { shape: number[]; m: number; axis: number; dtype: 'i32' | 'u32'; collapse?: boolean }[] = [
    { shape: [7, 3], m: 11, axis: 0, dtype: 'i32' },
    { shape: [2, 5, 3], m: 9, axis: 1, dtype: 'u32' },
    { shape: [3, 13], m: 40, axis: 1, dtype: 'i32' },
    { shape: [37, 5], m: 1000, axis: 0, dtype: 'u32' }, // several sort blocks
    { shape: [37, 5], m: 700, axis: 0, dtype: 'i32', collapse: true }, // every index on one row
  ];
  for (const c of cases) {
    const len = c.shape[c.axis];
    const idxData = Array.from({ length: c.m }, () => (c.collapse ? 3 : rng.int(len + 2) - 1)); // includes clamped -1 / len
    const idxData2 = c.dtype === 'u32' ? idxData.map((v) => (v < 0 ? 0 : v)) : idxData;
    const idx = tensor(idxData2, [c.m], c.dtype);
    const results: Float32Array[] = [];
    let g: Float32Array | null = null;
    for (let rep = 0; rep < 2; rep++) {
      const x = tensor(rand(c.shape), c.shape).requireGrad();
      const y = gather(x, idx, c.axis);
      g ??= rand([...y.shape]);
      backward(y, { grad: tensor(g, y.shape) });
      results.push((await x.grad!.read()) as Float32Array);
      x.grad!.dispose();
    }
    const ref = refGatherBackward(g!, c.shape, idxData2, [c.m], c.axis);
    assertClose(t, results[0], ref, { rtol: 1e-5, atol: 1e-5 }, `gather backward [${c.shape}] m=${c.m} axis ${c.axis}`);
    t.same(results[0], results[1], 'deterministic');
  }
});

t.test('gather backward at VQ-VAE size (K=512 rows, N=65536 indices, D=64), collapsed rows, large blocks', async (t) => {
  const K = 512, N = 65536, D = 64;
  const g = rand([N, D]);
  const gt = tensor(g, [N, D]);
  // uniform codes, and a collapsed codebook: 70% of the vectors on code 5 (179 segments)
  const uniform = Int32Array.from({ length: N }, () => rng.int(K));
  const collapsed = Int32Array.from({ length: N }, () => (rng.next() < 0.7 ? 5 : rng.int(K)));
  for (const [name, idxData] of [['uniform', uniform], ['collapsed', collapsed]] as const) {
    const idx = tensor(idxData, [N]);
    const t0 = performance.now();
    const dx = await gatherBackward(gt, idx, [K, D], 0).read();
    t.comment(`gather backward K=${K} N=${N} D=${D} ${name}: ${(performance.now() - t0).toFixed(0)} ms incl. read-back`);
    // f32 sums of ~128 (uniform) or ~46,000 (collapsed row) terms of size <= 1
    const atol = name === 'collapsed' ? 2e-4 : 1e-5;
    assertClose(t, dx, refGatherBackward(g, [K, D], idxData, [N], 0), { rtol: 1e-4, atol }, `${name}: vs float64`);
    // bit-exact against the documented summation order: proves the sort is stable
    const exact = compare(dx, f32GatherBackwardRows(g, K, D, idxData, GATHER_SEGMENT), EXACT);
    t.ok(exact.ok, `${name}: bit-exact in index order: ${exact.worst}`);
  }
  // through autograd
  const x = tensor(rand([K, D]), [K, D]).requireGrad();
  backward(gather(x, tensor(uniform, [N]), 0), { grad: gt });
  assertClose(t, await x.grad!.read(), refGatherBackward(g, [K, D], uniform, [N], 0), { rtol: 1e-4, atol: 1e-5 }, 'via backward()');
  // m * axisLen > 2^22 * 256 makes sort blocks longer than 256 positions
  const A = 65536, M = 20000;
  const idx2 = Int32Array.from({ length: M }, () => rng.int(A));
  const x2 = tensor(new Float32Array(A), [A]).requireGrad();
  const y2 = gather(x2, tensor(idx2), 0);
  const g2 = rand([M]);
  backward(y2, { grad: tensor(g2, [M]) });
  assertClose(t, await x2.grad!.read(), refGatherBackward(g2, [A], idx2, [M], 0), { rtol: 1e-5, atol: 1e-6 }, 'large-block gather backward');
});

t.test('strided copies with more than 65535 workgroups', async (t) => {
  const n = 65536 * 256 + 17; // 65537 workgroups of 256
  const xd = new Float32Array(n);
  for (let i = 0; i < n; i++) xd[i] = i;
  const x = tensor(xd, [n]);
  const y = slice(x, [1], [n]);
  const v = await y.read();
  let ok = v.length === n - 1;
  for (let i = 0; ok && i < v.length; i++) ok = v[i] === xd[i + 1];
  t.ok(ok, 'slice of 16.8M elements copies every element');
  const z = permute(reshape(x, [n, 1]), [1, 0]);
  const w = await z.read();
  t.equal(w[n - 1], xd[n - 1]);
});

t.test('finite-difference gradchecks', async (t) => {
  const inp = (shape: number[]) => ({ data: rand(shape), shape });
  t.same(await gradcheck(([x]) => reshape(x, [3, -1]), [inp([2, 3, 2])]), [], 'reshape');
  t.same(await gradcheck(([x]) => permute(x, [2, 0, 3, 1]), [inp([2, 3, 1, 4])]), [], 'permute');
  t.same(await gradcheck(([x]) => slice(x, [1, 0, 2], [3, 2, 4]), [inp([4, 2, 5])]), [], 'slice');
  t.same(
    await gradcheck(([a, b, c]) => concat([a, b, c], 1), [inp([2, 3]), inp([2, 1]), inp([2, 4])]),
    [],
    'concat',
  );
  const idx = tensor([2, 0, 2, 2, 4, 1], [2, 3], 'i32');
  t.same(await gradcheck(([x]) => gather(x, idx, 0), [inp([5, 3])]), [], 'gather axis 0 with repeated indices');
  t.same(await gradcheck(([x]) => gather(x, idx, 1), [inp([2, 5, 2])]), [], 'gather axis 1');
});

t.test('errors name the shapes', async (t) => {
  const x = tensor(rand([2, 3]), [2, 3]);
  t.throws(() => reshape(x, [4]), /reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4\]/);
  t.throws(() => reshape(x, [4, -1]), /reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4, -1\]/);
  t.throws(() => reshape(x, [-1, -1]), /at most one -1/);
  t.throws(() => permute(x, [0, 0]), /permute: dims \[0, 0\] are not a permutation of the 2 dims of shape \[2, 3\]/);
  t.throws(() => permute(x, [0]), /not a permutation/);
  t.throws(() => permute(x, [0, 2]), /not a permutation/);
  t.throws(() => concat([x, tensor(rand([3, 3]), [3, 3])], 1), /concat: shapes \[2, 3\] and \[3, 3\] differ outside axis 1/);
  t.throws(() => concat([x, tensor(rand([6]), [6])], 0), /concat: shapes \[2, 3\] and \[6\]/);
  t.throws(() => concat([x, tensor(new Int32Array(6), [2, 3])], 0), /concat: dtypes f32 and i32 differ/);
  t.throws(() => concat([x], 2), /concat: axis 2 is out of range for shape \[2, 3\]/);
  t.throws(() => gather(x, tensor([0, 1], [2]), 0), /gather: indices must be i32 or u32, got Tensor #\d+ f32\[2\]/);
  t.throws(() => gather(x, tensor([0], [1], 'i32'), 2), /gather: axis 2 is out of range/);
  t.throws(() => gather(tensor([], [0, 3]), tensor([0], [1], 'i32'), 0), /gather: axis 0 of shape \[0, 3\] is empty/);
});
