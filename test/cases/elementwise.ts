// Elementwise test cases shared by test/elementwise.test.ts and the browser suite
// (test/browser/suite.ts). Platform-free: no node:*, no tap. Seeds come from positions in these
// lists, so both sides see the same data; keep the order.
import { type refOps, type Shape, values } from '../ref/elementwise.js';

// Shapes: a scalar, one element, primes, a trailing 1, and a multiple of 4 (vec4 path without a tail).
export const SHAPES: Shape[] = [[], [1], [7], [3, 5, 1], [2, 3, 4], [1031]];

export type UnaryName = keyof typeof refOps;
// input range and tolerance per op; exact ops must match float64 rounded to f32 exactly
export const UNARY: Record<UnaryName, { low: number; high: number; rtol: number; atol: number }> = {
  relu: { low: -3, high: 3, rtol: 0, atol: 0 },
  neg: { low: -3, high: 3, rtol: 0, atol: 0 },
  abs: { low: -3, high: 3, rtol: 0, atol: 0 },
  square: { low: -3, high: 3, rtol: 6e-8, atol: 0 },
  // WGSL allows exp an error of 3 + 2|x| ULP
  exp: { low: -20, high: 20, rtol: 4e-6, atol: 0 },
  log: { low: 1e-6, high: 1e4, rtol: 2e-6, atol: 1e-6 },
  sqrt: { low: 0, high: 1e4, rtol: 3e-7, atol: 0 },
  tanh: { low: -12, high: 12, rtol: 2e-6, atol: 0 },
  sigmoid: { low: -30, high: 30, rtol: 4e-6, atol: 0 },
};

export type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum';
export const BINARY: Record<BinaryName, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: Math.max,
  minimum: Math.min,
};

// pairs: equal shapes, numpy broadcasts in both directions, scalars, 5-D, and a rank-7 layout
// whose dims alternate between the operands so nothing merges
export const PAIRS: [Shape, Shape][] = [
  [[7], [7]],
  [[2, 3, 4], [2, 3, 4]],
  [[], []],
  [[2, 1, 4], [3, 1]],
  [[3, 1], [2, 1, 4]],
  [[3, 5, 1], [5, 7]],
  [[], [7]],
  [[1], [3, 5, 1]],
  [[1031], [1]],
  [[4, 1, 3, 1, 2], [5, 3, 1, 1]],
  [[2, 1, 2, 1, 2, 1, 2], [1, 3, 1, 3, 1, 3, 1]],
  [[1, 37], [33, 1]],
];

/** Values in [low, high) kept at least `gap` away from every point in `avoid` (kinks, poles). */
export function awayFrom(n: number, seed: number, low: number, high: number, avoid: number[], gap = 0.05): Float32Array {
  const v = values(n, seed, low, high);
  for (let i = 0; i < n; i++) {
    for (const p of avoid) if (Math.abs(v[i] - p) < gap) v[i] = p + (v[i] >= p ? gap : -gap);
  }
  return v;
}
