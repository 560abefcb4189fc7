// Float64 CPU references for the elementwise ops: plain loops over row-major data, written
// independently of the engine's stride/collapse logic.

export type Shape = readonly number[];

export const size = (s: Shape) => s.reduce((a, d) => a * d, 1);

/** NumPy broadcast of two shapes, or null when they do not broadcast. */
export function broadcastShape(a: Shape, b: Shape): number[] | null {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let k = 0; k < r; k++) {
    const da = k - (r - a.length) >= 0 ? a[k - (r - a.length)] : 1;
    const db = k - (r - b.length) >= 0 ? b[k - (r - b.length)] : 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Row-major coordinates of flat index i in `shape`. */
export function coords(i: number, shape: Shape): number[] {
  const c = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) {
    c[k] = i % shape[k];
    i = Math.floor(i / shape[k]);
  }
  return c;
}

/** Flat index in `shape` of output coordinates `c` (right-aligned; size-1 dims repeat). */
export function broadcastIndex(c: number[], shape: Shape): number {
  let idx = 0;
  const lead = c.length - shape.length;
  for (let k = 0; k < shape.length; k++) idx = idx * shape[k] + (shape[k] === 1 ? 0 : c[lead + k]);
  return idx;
}

export function refUnary(x: ArrayLike<number>, f: (v: number) => number): Float64Array {
  return Float64Array.from(x, (v) => f(v));
}

export function refBinary(
  a: ArrayLike<number>,
  aShape: Shape,
  b: ArrayLike<number>,
  bShape: Shape,
  f: (x: number, y: number) => number,
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShape(aShape, bShape);
  if (!shape) throw new Error(`reference: [${aShape}] and [${bShape}] do not broadcast`);
  const n = size(shape);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const c = coords(i, shape);
    data[i] = f(a[broadcastIndex(c, aShape)], b[broadcastIndex(c, bShape)]);
  }
  return { data, shape };
}

/** x broadcast to `shape`. */
export function refExpand(x: ArrayLike<number>, xShape: Shape, shape: Shape): Float64Array {
  const out = new Float64Array(size(shape));
  for (let i = 0; i < out.length; i++) out[i] = x[broadcastIndex(coords(i, shape), xShape)];
  return out;
}

export const refOps = {
  relu: (v: number) => Math.max(v, 0),
  exp: Math.exp,
  log: Math.log,
  neg: (v: number) => -v,
  sqrt: Math.sqrt,
  tanh: Math.tanh,
  sigmoid: (v: number) => 1 / (1 + Math.exp(-v)),
  abs: Math.abs,
  square: (v: number) => v * v,
};

/** Deterministic pseudo-random values in [low, high) (float32-representable). */
export function values(n: number, seed: number, low = -1, high = 1): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = low + ((high - low) * (s >>> 8)) / 16777216;
  }
  return out;
}
