// Float64 CPU references for the reductions: every output element visits its inputs by
// explicit coordinates (no [outer, len, inner] trick, so it checks the engine's one).
import { type Shape, coords, size } from './elementwise.js';

function axisMask(shape: Shape, axes: number | readonly number[] | undefined): boolean[] {
  if (axes === undefined) return shape.map(() => true);
  const list = typeof axes === 'number' ? [axes] : axes;
  const mask = shape.map(() => false);
  for (const a of list) mask[a < 0 ? a + shape.length : a] = true;
  return mask;
}

/** Sum (or mean) over `axes`; returns the keepDims shape and the shape without them. */
export function refSum(
  x: ArrayLike<number>,
  shape: Shape,
  axes: number | readonly number[] | undefined,
  mean = false,
): { data: Float64Array; kept: number[]; dropped: number[] } {
  const mask = axisMask(shape, axes);
  const kept = shape.map((d, k) => (mask[k] ? 1 : d));
  const dropped = shape.filter((_, k) => !mask[k]);
  const data = new Float64Array(size(kept));
  for (let i = 0; i < size(shape); i++) {
    const c = coords(i, shape);
    let o = 0;
    for (let k = 0; k < shape.length; k++) o = o * kept[k] + (mask[k] ? 0 : c[k]);
    data[o] += x[i];
  }
  if (mean) {
    const count = size(shape) / Math.max(size(kept), 1);
    for (let i = 0; i < data.length; i++) data[i] /= count;
  }
  return { data, kept, dropped };
}

/** Max or min along one axis (all elements when undefined): values and first index. */
export function refArg(
  x: ArrayLike<number>,
  shape: Shape,
  axis: number | undefined,
  mode: 'max' | 'min',
): { values: Float64Array; indices: Uint32Array } {
  const s = axis === undefined ? [size(shape)] : shape;
  const k = axis === undefined ? 0 : axis < 0 ? axis + shape.length : axis;
  const outer = size(s.slice(0, k));
  const len = s[k];
  const inner = size(s.slice(k + 1));
  const values = new Float64Array(outer * inner);
  const indices = new Uint32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let best = x[o * len * inner + j];
      let bi = 0;
      for (let r = 1; r < len; r++) {
        const v = x[(o * len + r) * inner + j];
        if (mode === 'max' ? v > best : v < best) {
          best = v;
          bi = r;
        }
      }
      values[o * inner + j] = best;
      indices[o * inner + j] = bi;
    }
  }
  return { values, indices };
}
