// Float64 CPU references for the shape ops, written from the definitions (index arithmetic
// over multi-indices), independent of the engine's strided-copy formulation.

export function size(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Multi-index of flat position i in a row-major shape. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) {
    c[k] = i % shape[k];
    i = Math.floor(i / shape[k]);
  }
  return c;
}

export function ravel(c: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let k = 0; k < shape.length; k++) i = i * shape[k] + c[k];
  return i;
}

export function refPermute(x: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): Float64Array {
  const outShape = perm.map((d) => shape[d]);
  const out = new Float64Array(size(outShape));
  for (let i = 0; i < out.length; i++) {
    const oc = unravel(i, outShape);
    const ic = new Array<number>(shape.length);
    perm.forEach((d, k) => (ic[d] = oc[k]));
    out[i] = x[ravel(ic, shape)];
  }
  return out;
}

export function refSlice(x: ArrayLike<number>, shape: readonly number[], starts: readonly number[], ends: readonly number[]): { data: Float64Array; shape: number[] } {
  const outShape = shape.map((_, k) => ends[k] - starts[k]);
  const out = new Float64Array(size(outShape));
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, outShape).map((v, k) => v + starts[k]);
    out[i] = x[ravel(c, shape)];
  }
  return { data: out, shape: outShape };
}

/** Gradient of slice: zeros of `shape` with g placed at `starts`. */
export function refPad(g: ArrayLike<number>, gShape: readonly number[], shape: readonly number[], starts: readonly number[]): Float64Array {
  const out = new Float64Array(size(shape));
  for (let i = 0; i < size(gShape); i++) {
    const c = unravel(i, gShape).map((v, k) => v + starts[k]);
    out[ravel(c, shape)] = g[i];
  }
  return out;
}

export function refConcat(xs: ArrayLike<number>[], shapes: number[][], axis: number): { data: Float64Array; shape: number[] } {
  const outShape = [...shapes[0]];
  outShape[axis] = shapes.reduce((a, s) => a + s[axis], 0);
  const out = new Float64Array(size(outShape));
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, outShape);
    let which = 0;
    let a = c[axis];
    while (a >= shapes[which][axis]) a -= shapes[which++][axis];
    const ic = [...c];
    ic[axis] = a;
    out[i] = xs[which][ravel(ic, shapes[which])];
  }
  return { data: out, shape: outShape };
}

/** Clamps an index as the engine documents: into [0, len). */
export function clampIndex(v: number, len: number): number {
  return Math.min(Math.max(v, 0), len - 1);
}

export function refGather(
  x: ArrayLike<number>,
  shape: readonly number[],
  idx: ArrayLike<number>,
  idxShape: readonly number[],
  axis: number,
): { data: Float64Array; shape: number[] } {
  const outShape = [...shape.slice(0, axis), ...idxShape, ...shape.slice(axis + 1)];
  const out = new Float64Array(size(outShape));
  const r = idxShape.length;
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, outShape);
    const j = ravel(c.slice(axis, axis + r), idxShape);
    const ic = [...c.slice(0, axis), clampIndex(idx[j], shape[axis]), ...c.slice(axis + r)];
    out[i] = x[ravel(ic, shape)];
  }
  return { data: out, shape: outShape };
}

/** Gradient of gather into x: scatter-add of g along axis. */
export function refGatherBackward(
  g: ArrayLike<number>,
  shape: readonly number[],
  idx: ArrayLike<number>,
  idxShape: readonly number[],
  axis: number,
): Float64Array {
  const gShape = [...shape.slice(0, axis), ...idxShape, ...shape.slice(axis + 1)];
  const out = new Float64Array(size(shape));
  const r = idxShape.length;
  for (let i = 0; i < size(gShape); i++) {
    const c = unravel(i, gShape);
    const j = ravel(c.slice(axis, axis + r), idxShape);
    const ic = [...c.slice(0, axis), clampIndex(idx[j], shape[axis]), ...c.slice(axis + r)];
    out[ravel(ic, shape)] += g[i];
  }
  return out;
}

/**
 * The engine's exact f32 summation order for gather's gradient into x (axis 0 of a 2-D x):
 * each row's positions in increasing j, cut into segments of `seg`, each segment summed in
 * order from 0, then the segment sums added in order from 0.
 */
export function f32GatherBackwardRows(g: ArrayLike<number>, rows: number, inner: number, idx: ArrayLike<number>, seg: number): Float32Array {
  const buckets: number[][] = Array.from({ length: rows }, () => []);
  for (let j = 0; j < idx.length; j++) buckets[clampIndex(idx[j], rows)].push(j);
  const out = new Float32Array(rows * inner);
  for (let a = 0; a < rows; a++) {
    const b = buckets[a];
    for (let r = 0; r < inner; r++) {
      let acc = 0;
      for (let s = 0; s < b.length; s += seg) {
        let part = 0;
        for (let q = s; q < Math.min(s + seg, b.length); q++) part = Math.fround(part + g[b[q] * inner + r]);
        acc = Math.fround(acc + part);
      }
      out[a * inner + r] = acc;
    }
  }
  return out;
}
