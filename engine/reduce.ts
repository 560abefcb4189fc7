// Reductions with autograd: sum and mean over any set of axes, max along one axis (values),
// argmax/argmin (u32 indices, no gradient), and their adjoint, broadcasting: expand(x, shape)
// and sumToShape(g, shape) (used by the elementwise ops' backward). Launches shaders/reduce.wgsl.
//
// Nothing is permuted: after dropping size-1 dims and merging neighbours, the reduced axes form
// runs, and each run is reduced in place as [outer, len, inner]. Each pass adds short runs of
// rows (<= 128 per invocation) into partial results, so no invocation loops over a whole big
// axis and a 4M-element sum is four cheap passes. The order of additions is fixed: results are
// deterministic, and the error grows like a tree's (~log n), not a single running sum's (~n).
// sum, mean, expand and sumToShape also take f16 tensors and return f16: their sums add in f32
// and round once, at the last pass (sections templated on their storage types).
import { record } from './autograd.js';
import type { Capabilities } from './device.js';
import { floatKernel } from './float_kernel.js';
import { dimWords, paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type FloatDType, type Tensor, assertDType, empty, full, share, shapeSize } from './tensor.js';

/** Most dims a broadcast kernel handles after merging neighbours. */
export const MAX_BROADCAST_RANK = 8;

// sum_cols adds up to COLS_SINGLE rows in one invocation; a longer axis is split so that each
// invocation adds about COLS_CHUNK (sequential runs stay short: rounding error ~log(n))
const COLS_SINGLE = 128;
const COLS_CHUNK = 64;
const ARG_THREADS = 16384; // arg_cols splits an axis until about this many invocations run

/** [outer, len, inner] -> [outer, chunks, inner] partial sums, times scale. */
const SUM_COLS_PARAMS = paramBlock({ outer: 'u32', len: 'u32', inner: 'u32', chunks: 'u32', scale: 'f32' });
/** As sum_cols, best value and index; first: the values are x itself (indices are positions). */
const ARG_COLS_PARAMS = paramBlock({ outer: 'u32', len: 'u32', inner: 'u32', chunks: 'u32', first: 'u32' });
const MAX_GRAD_PARAMS = paramBlock({ n: 'u32', len: 'u32', inner: 'u32' });
/** y = x[broadcast index] * scale: the collapsed output shape and x's strides, 8 dims each. */
const BROADCAST_PARAMS = paramBlock({ n: 'u32', scale: 'f32', _p0: 'u32', _p1: 'u32', shape: 'array<vec4u, 2>', sx: 'array<vec4u, 2>' });

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
const prod = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);

/** Checks that `x` is f32 or f16 and returns which. */
function floatType(op: string, x: Tensor): FloatDType {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new Error(`${op}: expected f32 or f16, got ${x.describe()}`);
  return x.dtype;
}

// ---- Broadcasting

/** NumPy broadcast of two shapes; throws `op: shapes [..] and [..] do not broadcast`. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let k = 0; k < r; k++) {
    const da = a[a.length - r + k] ?? 1;
    const db = b[b.length - r + k] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

export interface BroadcastLayout {
  /** The output shape with size-1 dims dropped and mergeable neighbours merged (rank >= 1). */
  shape: number[];
  /** Per input, its element stride along each dim of `shape` (0 where it is repeated). */
  strides: number[][];
}

/**
 * How each of `inputs` (shapes that broadcast to `out`) is read for each output element:
 * dims merge where every input is contiguous across them, so common cases (bias over NCHW,
 * row vector over a matrix) need two or three dims.
 */
export function broadcastLayout(op: string, out: readonly number[], inputs: readonly (readonly number[])[]): BroadcastLayout {
  const r = out.length;
  const full = inputs.map((s) => {
    const st = new Array<number>(r).fill(0);
    let acc = 1;
    for (let k = s.length - 1; k >= 0; k--) {
      if (s[k] !== 1) st[r - s.length + k] = acc;
      acc *= s[k];
    }
    return st;
  });
  const shape: number[] = [];
  const strides: number[][] = inputs.map(() => []);
  for (let k = 0; k < r; k++) {
    if (out[k] === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && full.every((st, j) => strides[j][last] === st[k] * out[k])) {
      shape[last] *= out[k];
      full.forEach((st, j) => (strides[j][last] = st[k]));
    } else {
      shape.push(out[k]);
      full.forEach((st, j) => strides[j].push(st[k]));
    }
  }
  if (shape.length > MAX_BROADCAST_RANK) {
    throw new Error(`${op}: broadcasting ${inputs.map(fmt).join(', ')} to ${fmt(out)} needs ${shape.length} dims, more than ${MAX_BROADCAST_RANK}`);
  }
  if (shape.length === 0) return { shape: [1], strides: inputs.map(() => [0]) };
  return { shape, strides };
}

/** The capabilities the broadcast plan reads. */
export type BroadcastCaps = Pick<Capabilities, 'isCpu'>;

/**
 * Outputs per invocation of the broadcast kernels (expand here, binary_bcast / ternary_bcast in
 * ./elementwise.ts), pure: (device capabilities) -> plan; the launchers pass rt().caps. On a CPU
 * device 16 (integer division has no SIMD form there, so coordinates are stepped, not
 * recomputed); on a GPU 1, so that neighbouring invocations write neighbouring words (bench:
 * train_step).
 */
export function broadcastPerInvocation(caps: BroadcastCaps): number {
  return caps.isCpu ? 16 : 1;
}

/** Records y = x[broadcast index] * scale where x's shape broadcasts to `shape` (no autograd). */
function broadcastRaw(op: string, x: Tensor, xShape: readonly number[], shape: readonly number[], scale: number): Tensor {
  const dtype = floatType(op, x);
  const y = empty(shape, dtype);
  if (y.size === 0) return y;
  const layout = broadcastLayout(op, shape, [xShape]);
  const u = BROADCAST_PARAMS.pack({ n: y.size, scale, shape: dimWords(layout.shape), sx: dimWords(layout.strides[0]) });
  const per = broadcastPerInvocation(rt().caps);
  const k = floatKernel('reduce', 'broadcast', dtype, { RANK: layout.shape.length, PER: per, S: dtype }, BROADCAST_PARAMS);
  rt().dispatch(k, [x.buffer, y.buffer], u, grid1d(Math.ceil(y.size / (256 * per))));
  return y;
}

/** Broadcasts `x` to `shape` (NumPy rules) as a new tensor. Gradient: sumToShape. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  floatType('expand', x);
  const target = broadcastShapes('expand', x.shape, shape);
  if (fmt(target) !== fmt(shape)) throw new Error(`expand: shape ${fmt(x.shape)} does not broadcast to ${fmt(shape)}`);
  const xShape = x.shape;
  const y = broadcastRaw('expand', x, xShape, shape, 1);
  return record(y, 'expand', [x], [], (g) => [sumToShape(g, xShape)]);
}

/**
 * Sums `x` down to `shape`, a shape that broadcasts to x's: the adjoint of broadcasting,
 * which turns an output gradient into an input's. Always a new tensor. Gradient: expand.
 */
export function sumToShape(x: Tensor, shape: readonly number[]): Tensor {
  floatType('sumToShape', x);
  const lead = x.rank - shape.length;
  const ok = lead >= 0 && shape.every((d, k) => d === x.shape[lead + k] || d === 1);
  if (!ok) throw new Error(`sumToShape: shape ${fmt(x.shape)} cannot be summed to ${fmt(shape)}`);
  const mask = x.shape.map((d, k) => k < lead || (shape[k - lead] === 1 && d !== 1));
  const y = sumRaw(x, mask, false, shape);
  const xShape = x.shape;
  return record(y, 'sumToShape', [x], [], (g) => [broadcastRaw('sumToShape', g, shape, xShape, 1)]);
}

// ---- sum / mean

/** A mask of reduced axes; `axes` undefined means all. Negative axes count from the end. */
function reduceMask(op: string, shape: readonly number[], axes: number | readonly number[] | undefined): boolean[] {
  const mask = shape.map(() => axes === undefined);
  if (axes === undefined) return mask;
  for (const a of typeof axes === 'number' ? [axes] : axes) {
    const k = a < 0 ? a + shape.length : a;
    if (!Number.isInteger(a) || k < 0 || k >= shape.length) {
      throw new Error(`${op}: axis ${a} is out of range for shape ${fmt(shape)}`);
    }
    if (mask[k]) throw new Error(`${op}: axis ${a} is repeated in [${axes}]`);
    mask[k] = true;
  }
  return mask;
}

/**
 * One pass of sum_cols: [outer, len, inner] -> [outer, chunks, inner] partial sums (times
 * `scale`) of dtype `out`: f32, or f16 for the last pass of an f16 sum.
 */
function sumPass(src: Tensor, outer: number, len: number, inner: number, scale: number, out: FloatDType): { t: Tensor; len: number } {
  const chunks = len <= COLS_SINGLE ? 1 : Math.ceil(len / COLS_CHUNK);
  const n = outer * chunks * inner;
  const t = empty([n], out);
  const u = SUM_COLS_PARAMS.pack({ outer, len, inner, chunks, scale });
  const k = floatKernel('reduce', 'sum_cols', src.dtype === 'f32' && out === 'f32' ? 'f32' : 'f16', { IN: src.dtype, OUT: out }, SUM_COLS_PARAMS);
  rt().dispatch(k, [src.buffer, t.buffer], u, grid1d(Math.ceil(n / 256)));
  return { t, len: chunks };
}

/** Sum (or mean) of x over the axes in `mask`, as a new tensor of `outShape` (no autograd). */
function sumRaw(x: Tensor, mask: boolean[], isMean: boolean, outShape: readonly number[]): Tensor {
  const count = prod(x.shape.filter((_, k) => mask[k]));
  const dtype = floatType('sum', x);
  if (shapeSize(outShape) === 0) return empty(outShape, dtype);
  if (count === 0) return full(outShape, isMean ? NaN : 0, dtype);
  // runs of reduced / kept dims, size-1 dims dropped
  const groups: { size: number; reduced: boolean }[] = [];
  x.shape.forEach((d, k) => {
    if (d === 1) return;
    const last = groups[groups.length - 1];
    if (last && last.reduced === mask[k]) last.size *= d;
    else groups.push({ size: d, reduced: mask[k] });
  });
  if (!groups.some((g) => g.reduced)) return share(x, outShape); // only size-1 axes: nothing to add
  let cur = x;
  while (true) {
    const j = groups.map((g) => g.reduced).lastIndexOf(true);
    const outer = prod(groups.slice(0, j).map((g) => g.size));
    const inner = prod(groups.slice(j + 1).map((g) => g.size));
    let len = groups[j].size;
    const lastRun = groups.filter((g) => g.reduced).length === 1;
    while (len > 1) {
      const finalPass = lastRun && len <= COLS_SINGLE;
      const next = sumPass(cur, outer, len, inner, finalPass && isMean ? 1 / count : 1, finalPass ? dtype : 'f32');
      if (cur !== x) cur.dispose();
      cur = next.t;
      len = next.len;
    }
    groups.splice(j, 1);
    if (lastRun) break;
  }
  const y = share(cur, outShape);
  cur.dispose();
  return y;
}

type Axes = number | readonly number[];

function reduceShapes(op: string, x: Tensor, axes: Axes | undefined, keepDims: boolean) {
  const mask = reduceMask(op, x.shape, axes);
  const kept = x.shape.map((d, k) => (mask[k] ? 1 : d));
  const out = keepDims ? kept : x.shape.filter((_, k) => !mask[k]);
  return { mask, kept, out, count: prod(x.shape.filter((_, k) => mask[k])) };
}

/** Sum over `axes` (all when undefined); keepDims leaves the reduced axes as size 1. */
export function sum(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  floatType('sum', x);
  const s = reduceShapes('sum', x, axes, keepDims);
  const y = sumRaw(x, s.mask, false, s.out);
  const xShape = x.shape;
  return record(y, 'sum', [x], [], (g) => [broadcastRaw('sum', g, s.kept, xShape, 1)]);
}

/** Mean over `axes` (all when undefined); keepDims leaves the reduced axes as size 1. */
export function mean(x: Tensor, axes?: Axes, keepDims = false): Tensor {
  floatType('mean', x);
  const s = reduceShapes('mean', x, axes, keepDims);
  const y = sumRaw(x, s.mask, true, s.out);
  const xShape = x.shape;
  return record(y, 'mean', [x], [], (g) => [broadcastRaw('mean', g, s.kept, xShape, 1 / s.count)]);
}

// ---- max / argmax / argmin

/** [outer, len, inner] around one axis (undefined: all elements as one axis). */
function axisView(op: string, x: Tensor, axis: number | undefined, keepDims: boolean) {
  if (axis === undefined) {
    return { outer: 1, len: x.size, inner: 1, out: keepDims ? x.shape.map(() => 1) : [], axisSize: x.size };
  }
  const mask = reduceMask(op, x.shape, axis);
  const k = mask.indexOf(true);
  return {
    outer: prod(x.shape.slice(0, k)),
    len: x.shape[k],
    inner: prod(x.shape.slice(k + 1)),
    out: keepDims ? x.shape.map((d, i) => (i === k ? 1 : d)) : x.shape.filter((_, i) => i !== k),
    axisSize: x.shape[k],
  };
}

/** Best value and its index along `len` of [outer, len, inner], in passes of arg_cols. */
function argRaw(x: Tensor, cmp: '>' | '<', outer: number, len: number, inner: number): { values: Tensor; indices: Tensor } {
  const cols = outer * inner;
  let values = x;
  let indices: Tensor | null = null;
  do {
    // enough partial results to keep ~ARG_THREADS invocations busy, each scanning >= 32 rows
    const chunks = Math.max(1, Math.min(Math.ceil(len / 32), Math.floor(ARG_THREADS / Math.max(cols, 1))));
    const n = cols * chunks;
    const v = empty([n]);
    const vi = empty([n], 'u32');
    const u = ARG_COLS_PARAMS.pack({ outer, len, inner, chunks, first: !indices });
    const k = shaderKernel('reduce', 'arg_cols', { CMP: cmp }, ARG_COLS_PARAMS);
    rt().dispatch(k, [values.buffer, (indices ?? values).buffer, v.buffer, vi.buffer], u, grid1d(Math.ceil(n / 256)));
    if (values !== x) values.dispose();
    indices?.dispose();
    values = v;
    indices = vi;
    len = chunks;
  } while (len > 1);
  return { values, indices: indices! };
}

function argReduce(op: string, x: Tensor, cmp: '>' | '<', axis: number | undefined, keepDims: boolean) {
  assertDType(op, 'f32', x);
  const v = axisView(op, x, axis, keepDims);
  if (v.axisSize === 0) throw new Error(`${op}: cannot reduce an empty axis of ${x.describe()}`);
  if (v.outer * v.inner === 0) return { values: empty(v.out), indices: empty(v.out, 'u32'), v };
  const r = argRaw(x, cmp, v.outer, v.len, v.inner);
  const values = share(r.values, v.out);
  const indices = share(r.indices, v.out);
  r.values.dispose();
  r.indices.dispose();
  return { values, indices, v };
}

/**
 * Maximum along `axis` (all elements when undefined). The gradient flows to the first
 * maximal element only (lowest index along the axis), as with argmax. NaN handling follows
 * the device (WGSL does not define comparisons with NaN).
 */
export function max(x: Tensor, axis?: number, keepDims = false): Tensor {
  const { values, indices, v } = argReduce('max', x, '>', axis, keepDims);
  const xShape = x.shape;
  const y = record(values, 'max', [x], [indices], (g, [idx]) => {
    const dx = empty(xShape);
    const u = MAX_GRAD_PARAMS.pack({ n: dx.size, len: v.len, inner: v.inner });
    rt().dispatch(shaderKernel('reduce', 'max_grad', {}, MAX_GRAD_PARAMS), [g.buffer, idx.buffer, dx.buffer], u, grid1d(Math.ceil(dx.size / 256)));
    return [dx];
  });
  indices.dispose();
  return y;
}

/** Index (u32) of the largest element along `axis` (all elements when undefined); lowest index on ties. */
export function argmax(x: Tensor, axis?: number, keepDims = false): Tensor {
  const { values, indices } = argReduce('argmax', x, '>', axis, keepDims);
  values.dispose();
  return indices;
}

/** Index (u32) of the smallest element along `axis` (all elements when undefined); lowest index on ties. */
export function argmin(x: Tensor, axis?: number, keepDims = false): Tensor {
  const { values, indices } = argReduce('argmin', x, '<', axis, keepDims);
  values.dispose();
  return indices;
}
