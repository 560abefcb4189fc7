// Shape and indexing ops with autograd: reshape/flatten (views, no copy), permute/transpose
// (a strided copy, or shared-memory tiled transposes when the innermost output dim reads with
// a stride, as in NCHW <-> NHWC), slice (strided copy; gradient = pad), concat (one strided
// scatter per input; gradient = slices) and gather (gradient = a deterministic segment sum).
// Launches shaders/shape.wgsl. Kernels move 32-bit words, so all ops work on every 32-bit
// dtype; f16 tensors are refused (reshape and flatten, views, take them).
import { record } from './autograd.js';
import { floatKernel } from './float_kernel.js';
import { type ParamBlock, dimWords, paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, empty, share, shapeSize, zeros } from './tensor.js';

/** Most dims a strided kernel handles (after merging contiguous dims). */
export const MAX_RANK = 8;

// Up to MAX_RANK dims per array field, as two vec4u (uniform arrays need a 16-byte element stride).
const DIMS = 'array<vec4u, 2>';
/** copy and scatter: n elements from a (contiguous) `shape`, read or written at base + strides. */
const STRIDED_PARAMS = paramBlock({ n: 'u32', rank: 'u32', base: 'u32', _pad: 'u32', shape: DIMS, stride: DIMS }, 4);
const TRANSPOSE_PARAMS = paramBlock({
  tilesK: 'u32', tilesL: 'u32', sizeK: 'u32', sizeL: 'u32',
  outStrideK: 'u32', strideL: 'u32', batchRank: 'u32', nWork: 'u32',
  base: 'u32', _pad0: 'u32', _pad1: 'u32', _pad2: 'u32',
  bshape: DIMS, bout: DIMS, bsrc: DIMS,
}, 4);
const PAD_PARAMS = paramBlock({ n: 'u32', rank: 'u32', _pad0: 'u32', _pad1: 'u32', shape: DIMS, start: DIMS, len: DIMS, gstride: DIMS }, 4);
const GATHER_PARAMS = paramBlock({ n: 'u32', axisLen: 'u32', inner: 'u32', m: 'u32', signed: 'u32' });
const HIST_PARAMS = paramBlock({ m: 'u32', axisLen: 'u32', block: 'u32', nBlocks: 'u32', signed: 'u32' });
const COLSCAN_PARAMS = paramBlock({ axisLen: 'u32', nBlocks: 'u32' });
const ROWSCAN_PARAMS = paramBlock({ len: 'u32' });
const PLACE_PARAMS = paramBlock({ m: 'u32', axisLen: 'u32', block: 'u32', signed: 'u32' });
const SEGSUM_PARAMS = paramBlock({ n: 'u32', axisLen: 'u32', inner: 'u32', m: 'u32', maxSegs: 'u32' });
const SUM_PARAMS = paramBlock({ n: 'u32', axisLen: 'u32', inner: 'u32', maxSegs: 'u32' });

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    s[k] = acc;
    acc *= shape[k];
  }
  return s;
}

/** Normalises a possibly negative axis of a rank-`rank` tensor; names `op` on error. */
/** The kernels move 32-bit words: an f16 tensor (two halves per word) would be garbled. */
function assertWords(op: string, x: Tensor): void {
  if (x.dtype === 'f16') throw new Error(`${op}: f16 tensors are not supported (the shape kernels move 32-bit words); cast to f32 first, got ${x.describe()}`);
}

function normAxis(op: string, axis: number, rank: number, shape: readonly number[]): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for shape ${fmt(shape)}`);
  }
  return a;
}

/**
 * Drops size-1 dims and merges neighbours k, k+1 whose strides are contiguous
 * (stride[k] = stride[k+1] * shape[k+1]) in every stride set, so the kernels loop over as few
 * dims as possible (NCHW -> NHWC becomes a 3-D transpose).
 */
function coalesce(shape: readonly number[], strideSets: number[][]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strideSets.map(() => []);
  for (let k = 0; k < shape.length; k++) {
    if (shape[k] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strideSets.every((s, j) => outStrides[j][last] === s[k] * shape[k])) {
      outShape[last] *= shape[k];
      strideSets.forEach((s, j) => (outStrides[j][last] = s[k]));
    } else {
      outShape.push(shape[k]);
      strideSets.forEach((s, j) => outStrides[j].push(s[k]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/** Records a strided copy (`copy`: out[i] = src[base + off(i)]) or scatter (out[base + off(i)] = src[i]). */
function strided(
  op: string,
  which: 'copy' | 'scatter',
  src: Tensor,
  out: Tensor,
  shape: readonly number[],
  strides: number[],
  base: number,
): void {
  const n = shapeSize(shape);
  if (n === 0) return;
  const c = coalesce(shape, [strides]);
  if (c.shape.length > MAX_RANK) {
    throw new Error(`${op}: ${c.shape.length} non-mergeable dims exceed the supported ${MAX_RANK} (shape ${fmt(shape)})`);
  }
  const st = c.strides[0];
  const last = c.shape.length - 1;
  const unit = st.indexOf(1);
  // a copy whose innermost output dim reads with a stride would read uncoalesced: tile it (the
  // tile moves 32-bit words; f16 takes the plain strided copy)
  if (which === 'copy' && src.dtype !== 'f16' && last >= 1 && st[last] !== 1 && unit >= 0) {
    transposeTiled(src, out, c.shape, st, unit, base);
    return;
  }
  const params = STRIDED_PARAMS.pack({ n, rank: c.shape.length, base, shape: dimWords(c.shape), stride: dimWords(st) });
  const k =
    which === 'scatter' ? shaderKernel('shape', 'scatter', { RANK: c.shape.length }, STRIDED_PARAMS)
    : src.dtype === 'f16' ? floatKernel('shape', 'copy', 'f16', { RANK: c.shape.length, ELEM: 'f16' }, STRIDED_PARAMS)
    : shaderKernel('shape', 'copy', { RANK: c.shape.length, ELEM: 'u32' }, STRIDED_PARAMS);
  rt().dispatch(k, [src.buffer, out.buffer], params, grid1d(Math.ceil(n / 256)));
}

/**
 * out (contiguous, `shape`) <- src with `strides`, where dim `k` has source stride 1 and the
 * last dim does not: a batch of 2-D transposes of (dim k, last dim) through shared tiles.
 */
function transposeTiled(src: Tensor, out: Tensor, shape: number[], strides: number[], k: number, base: number): void {
  const last = shape.length - 1;
  const outStrides = contiguousStrides(shape);
  const batch = shape.map((_, d) => d).filter((d) => d !== k && d !== last);
  const tilesK = Math.ceil(shape[k] / 32);
  const tilesL = Math.ceil(shape[last] / 32);
  const nWork = tilesK * tilesL * batch.reduce((a, d) => a * shape[d], 1);
  const params = TRANSPOSE_PARAMS.pack({
    tilesK, tilesL, sizeK: shape[k], sizeL: shape[last], outStrideK: outStrides[k], strideL: strides[last], batchRank: batch.length, nWork, base,
    bshape: dimWords(batch.map((d) => shape[d])), bout: dimWords(batch.map((d) => outStrides[d])), bsrc: dimWords(batch.map((d) => strides[d])),
  });
  rt().dispatch(shaderKernel('shape', 'transpose', { RANK: batch.length }, TRANSPOSE_PARAMS), [src.buffer, out.buffer], params, grid1d(nWork));
}

// ---- reshape / flatten

/** The shape `shape` resolves to for `size` elements (one -1 is inferred). */
function resolveShape(op: string, from: readonly number[], shape: readonly number[]): number[] {
  const size = shapeSize(from);
  const free = shape.filter((d) => d === -1).length;
  const bad = shape.some((d) => !Number.isInteger(d) || d < -1);
  if (free > 1 || bad) {
    throw new Error(`${op}: invalid target shape ${fmt(shape)} (non-negative integers and at most one -1)`);
  }
  const known = shape.reduce((a, d) => (d === -1 ? a : a * d), 1);
  const out = [...shape];
  if (free === 1) {
    if (known === 0 || size % known !== 0) {
      throw new Error(`${op}: cannot reshape ${fmt(from)} (${size} elements) into ${fmt(shape)}`);
    }
    out[out.indexOf(-1)] = size / known;
  } else if (known !== size) {
    throw new Error(`${op}: cannot reshape ${fmt(from)} (${size} elements) into ${fmt(shape)} (${known} elements)`);
  }
  return out;
}

/** A view of `x` with another shape of the same size (one dim may be -1). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = resolveShape('reshape', x.shape, shape);
  const from = [...x.shape];
  const out = share(x, target);
  return record(out, 'reshape', [x], [], (g) => [share(g, from)]);
}

/** Merges dims startDim..endDim (inclusive, negative counts from the end) into one. */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis('flatten', startDim, x.rank, x.shape);
  const e = normAxis('flatten', endDim, x.rank, x.shape);
  if (e < s) throw new Error(`flatten: endDim ${endDim} comes before startDim ${startDim} for shape ${fmt(x.shape)}`);
  const merged = x.shape.slice(s, e + 1).reduce((a, d) => a * d, 1);
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)]);
}

// ---- permute / transpose

/** out.shape[k] = x.shape[dims[k]]; `dims` is a permutation of 0..rank-1 (negatives allowed). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const rank = x.rank;
  const ok =
    dims.length === rank &&
    dims.every((d) => Number.isInteger(d) && d >= -rank && d < rank) &&
    new Set(dims.map((d) => (d < 0 ? d + rank : d))).size === rank;
  if (!ok) {
    throw new Error(`permute: dims ${fmt(dims)} are not a permutation of the ${rank} dims of shape ${fmt(x.shape)}`);
  }
  const perm = dims.map((d) => (d < 0 ? d + rank : d));
  const inStrides = contiguousStrides(x.shape);
  const outShape = perm.map((d) => x.shape[d]);
  const out = empty(outShape, x.dtype);
  strided('permute', 'copy', x, out, outShape, perm.map((d) => inStrides[d]), 0);
  const inverse = new Array<number>(rank);
  perm.forEach((d, k) => (inverse[d] = k));
  return record(out, 'permute', [x], [], (g) => [permute(g, inverse)]);
}

/** Swaps two dims. */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const a = normAxis('transpose', d0, x.rank, x.shape);
  const b = normAxis('transpose', d1, x.rank, x.shape);
  const dims = x.shape.map((_, k) => k);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

function assertRank(op: string, x: Tensor, rank: number): void {
  if (x.rank !== rank) throw new Error(`${op}: expected a rank-${rank} tensor, got shape ${fmt(x.shape)}`);
}

/** [N, C, H, W] -> [N, H, W, C]. */
export function nchwToNhwc(x: Tensor): Tensor {
  assertRank('nchwToNhwc', x, 4);
  return permute(x, [0, 2, 3, 1]);
}

/** [N, H, W, C] -> [N, C, H, W]. */
export function nhwcToNchw(x: Tensor): Tensor {
  assertRank('nhwcToNchw', x, 4);
  return permute(x, [0, 3, 1, 2]);
}

// ---- slice

/**
 * x[starts[0]:ends[0], starts[1]:ends[1], ...]. Missing trailing axes are taken whole;
 * negative bounds count from the end of their axis. Bounds must satisfy
 * 0 <= start <= end <= dim after that (no silent clamping); start == end gives an empty axis.
 */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  assertWords('slice', x);
  const rank = x.rank;
  if (starts.length > rank || ends.length > rank) {
    throw new Error(`slice: ${Math.max(starts.length, ends.length)} bounds given for shape ${fmt(x.shape)}`);
  }
  const s: number[] = [];
  const len: number[] = [];
  for (let k = 0; k < rank; k++) {
    const d = x.shape[k];
    let a = k < starts.length ? starts[k] : 0;
    let b = k < ends.length ? ends[k] : d;
    if (!Number.isInteger(a) || !Number.isInteger(b)) throw new Error(`slice: non-integer bounds on axis ${k}`);
    if (a < 0) a += d;
    if (b < 0) b += d;
    if (a < 0 || b > d || a > b) {
      throw new Error(`slice: range ${starts[k]}:${ends[k] ?? d} is out of bounds for axis ${k} of shape ${fmt(x.shape)}`);
    }
    s.push(a);
    len.push(b - a);
  }
  const inStrides = contiguousStrides(x.shape);
  const base = s.reduce((acc, a, k) => acc + a * inStrides[k], 0);
  const out = empty(len, x.dtype);
  strided('slice', 'copy', x, out, len, inStrides, base);
  const xShape = [...x.shape];
  return record(out, 'slice', [x], [], (g) => [pad(g, xShape, s)]);
}

/** A zero tensor of `shape` with `g` written at offset `start` (slice's gradient). */
function pad(g: Tensor, shape: readonly number[], start: readonly number[]): Tensor {
  const out = empty(shape, g.dtype);
  const n = out.size;
  if (n === 0) return out;
  if (shape.length > MAX_RANK) throw new Error(`slice backward: rank ${shape.length} exceeds ${MAX_RANK}`);
  const params = PAD_PARAMS.pack({
    n, rank: shape.length, shape: dimWords(shape), start: dimWords(start), len: dimWords(g.shape), gstride: dimWords(contiguousStrides(g.shape)),
  });
  // an empty slice (g.size 0) is fine: no element is inside the box, so g is never read
  rt().dispatch(shaderKernel('shape', 'pad', { RANK: shape.length }, PAD_PARAMS), [g.buffer, out.buffer], params, grid1d(Math.ceil(n / 256)));
  return out;
}

// ---- concat

/** Joins tensors of equal dtype and shape (except along `axis`) along `axis`. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors given');
  const first = xs[0];
  const ax = normAxis('concat', axis, first.rank, first.shape);
  for (const x of xs) {
    const same =
      x.rank === first.rank && x.shape.every((d, k) => k === ax || d === first.shape[k]);
    if (!same) {
      throw new Error(`concat: shapes ${fmt(first.shape)} and ${fmt(x.shape)} differ outside axis ${axis}`);
    }
    if (x.dtype !== first.dtype) throw new Error(`concat: dtypes ${first.dtype} and ${x.dtype} differ`);
  }
  assertWords('concat', first);
  const outShape = [...first.shape];
  outShape[ax] = xs.reduce((a, x) => a + x.shape[ax], 0);
  const out = empty(outShape, first.dtype);
  const outStrides = contiguousStrides(outShape);
  const offsets: number[] = [];
  let at = 0;
  for (const x of xs) {
    offsets.push(at);
    strided('concat', 'scatter', x, out, x.shape, outStrides, at * outStrides[ax]);
    at += x.shape[ax];
  }
  const wants = xs.map((x) => x.requiresGrad);
  const shapes = xs.map((x) => [...x.shape]);
  return record(out, 'concat', [...xs], [], (g) =>
    shapes.map((shape, i) => {
      if (!wants[i]) return null;
      const starts = shape.map((_, k) => (k === ax ? offsets[i] : 0));
      const ends = shape.map((d, k) => (k === ax ? offsets[i] + d : d));
      return slice(g, starts, ends);
    }),
  );
}

// ---- gather

/**
 * Picks entries of `x` along `axis`: out.shape = x.shape[:axis] + indices.shape +
 * x.shape[axis+1:], out[..., j, ...] = x[..., indices[j], ...]. Indices are an i32 or u32
 * tensor. Out-of-range indices are CLAMPED into [0, x.shape[axis]) on the GPU (a negative i32
 * reads row 0, a too-large one the last row), never read out of bounds; the gradient flows
 * to the clamped row. The gradient into x is a deterministic segment sum (no float atomics).
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  if (indices.dtype !== 'i32' && indices.dtype !== 'u32') {
    throw new Error(`gather: indices must be i32 or u32, got ${indices.describe()}`);
  }
  if (x.rank === 0) throw new Error(`gather: cannot index a scalar ${x.describe()}`);
  assertWords('gather', x);
  const ax = normAxis('gather', axis, x.rank, x.shape);
  const axisLen = x.shape[ax];
  const outer = shapeSize(x.shape.slice(0, ax));
  const inner = shapeSize(x.shape.slice(ax + 1));
  const m = indices.size;
  if (axisLen === 0 && m > 0 && outer * inner > 0) {
    throw new Error(`gather: axis ${axis} of shape ${fmt(x.shape)} is empty and cannot be indexed`);
  }
  const outShape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
  const out = empty(outShape, x.dtype);
  const signed = indices.dtype === 'i32' ? 1 : 0;
  const n = out.size;
  if (n > 0) {
    const params = GATHER_PARAMS.pack({ n, axisLen, inner, m, signed });
    rt().dispatch(shaderKernel('shape', 'gather', {}, GATHER_PARAMS), [x.buffer, indices.buffer, out.buffer], params, grid1d(Math.ceil(n / 256)));
  }
  const xShape = [...x.shape];
  return record(out, 'gather', [x, indices], [indices], (g, [idx]) => [
    gatherBackward(g, idx, xShape, ax),
    null,
  ]);
}

/** Index positions per block in the backward's counting sort; the hist matrix stays <= 4M words. */
function sortBlock(m: number, axisLen: number): number {
  return Math.max(256, Math.ceil((m * axisLen) / (1 << 22)));
}

/** Positions per segment of a row's bucket (SEG in shape.wgsl). */
export const GATHER_SEGMENT = 256;

/**
 * dx[o, a, r] = sum over j with clamp(idx[j]) = a of g[o, j, r], deterministic:
 * 1. a stable counting sort of the index positions by row (per-block histograms, prefix sums
 *    over blocks and rows, placement) lists each row's positions in increasing j;
 * 2. each row's list is cut into segments of GATHER_SEGMENT positions, one thread per
 *    (segment, o, r) sums its segment in order;
 * 3. one thread per dx element sums its row's segment partials in order.
 * So a row hit by every index (a collapsed codebook) is still spread over many threads.
 * Work O(m + axisLen * blocks + g.size); memory O(blocks * axisLen + m + partials).
 */
export function gatherBackward(g: Tensor, indices: Tensor, xShape: readonly number[], axis: number): Tensor {
  const axisLen = xShape[axis];
  const outer = shapeSize(xShape.slice(0, axis));
  const inner = shapeSize(xShape.slice(axis + 1));
  const m = indices.size;
  if (m === 0 || outer * inner === 0) return zeros(xShape);
  const signed = indices.dtype === 'i32' ? 1 : 0;
  const block = sortBlock(m, axisLen);
  const nBlocks = Math.ceil(m / block);
  // at most one partial segment per non-empty row plus the full ones
  const maxSegs = Math.floor(m / GATHER_SEGMENT) + Math.min(axisLen, m);
  const r = rt();
  const hist = zeros([nBlocks * axisLen], 'u32');
  const rank = empty([m], 'u32');
  const total = empty([axisLen], 'u32');
  const segs = empty([axisLen], 'u32');
  const rowStart = empty([axisLen + 1], 'u32');
  const segStart = empty([axisLen + 1], 'u32');
  const order = empty([m], 'u32');
  const partial = empty([outer * maxSegs * inner]);
  const k = (section: string, params: ParamBlock<any>) => shaderKernel('shape', section, {}, params);
  r.dispatch(k('gather_hist', HIST_PARAMS), [indices.buffer, hist.buffer, rank.buffer],
    HIST_PARAMS.pack({ m, axisLen, block, nBlocks, signed }), grid1d(Math.ceil(nBlocks / 64)));
  r.dispatch(k('gather_colscan', COLSCAN_PARAMS), [hist.buffer, total.buffer, segs.buffer],
    COLSCAN_PARAMS.pack({ axisLen, nBlocks }), grid1d(Math.ceil(axisLen / 64)));
  const rowscan = k('gather_rowscan', ROWSCAN_PARAMS);
  r.dispatch(rowscan, [total.buffer, rowStart.buffer], ROWSCAN_PARAMS.pack({ len: axisLen }), [1]);
  r.dispatch(rowscan, [segs.buffer, segStart.buffer], ROWSCAN_PARAMS.pack({ len: axisLen }), [1]);
  r.dispatch(k('gather_place', PLACE_PARAMS), [indices.buffer, hist.buffer, rank.buffer, rowStart.buffer, order.buffer],
    PLACE_PARAMS.pack({ m, axisLen, block, signed }), grid1d(Math.ceil(m / 256)));
  r.dispatch(k('gather_segsum', SEGSUM_PARAMS), [g.buffer, order.buffer, rowStart.buffer, segStart.buffer, partial.buffer],
    SEGSUM_PARAMS.pack({ n: partial.size, axisLen, inner, m, maxSegs }), grid1d(Math.ceil(partial.size / 256)));
  const dx = empty(xShape);
  r.dispatch(k('gather_sum', SUM_PARAMS), [partial.buffer, segStart.buffer, dx.buffer],
    SUM_PARAMS.pack({ n: dx.size, axisLen, inner, maxSegs }), grid1d(Math.ceil(dx.size / 256)));
  for (const t of [hist, rank, total, segs, rowStart, segStart, order, partial]) t.dispose();
  return dx;
}
