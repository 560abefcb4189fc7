// Reduction test cases shared by test/reduce.test.ts and the browser suite
// (test/browser/suite.ts). Platform-free: no node:*, no tap. Each case's seed is its position in
// its list, so both sides see the same data; keep the order.
import type { Shape } from '../ref/elementwise.js';

export type Axes = number | number[] | undefined;

// shape, axis sets: scalars, size-1 dims, primes, non-contiguous sets, negative axes, and axes
// long enough for several passes (1031 rows > 128 per invocation, with inner 1 and 3)
export const SUM_CASES: [Shape, Axes[]][] = [
  [[], [undefined, []]],
  [[1], [undefined, 0, []]],
  [[7], [undefined, 0, -1]],
  [[3, 5, 1], [undefined, 0, 1, 2, [0, 2], [1, 2], [0, 1], -2]],
  [[2, 3, 4, 5], [[0, 2], [1, 3], [0, 1, 3], [0, 2, 3], [3, 0], [2]]],
  [[7, 1031, 3], [1, [0, 1], 2]],
  [[3, 127, 5], [1]],
  [[7219], [0]],
  [[2, 1, 3, 1, 2], [[1, 3], [0, 2, 4], [0, 1]]],
];

// shape, axes for max, argmax and argmin
export const ARG_CASES: [Shape, (number | undefined)[]][] = [
  [[], [undefined]],
  [[1], [0, undefined]],
  [[7], [0, -1]],
  [[3, 5, 1], [0, 1, 2, undefined]],
  [[2, 3, 4], [-1, 1]],
  [[5, 1031, 3], [1, 0]],
  [[70001], [0]],
];
