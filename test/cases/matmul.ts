// matmul test cases shared by test/matmul.test.ts and the browser suite (test/browser/suite.ts).
// Platform-free: no node:*, no tap. Both draw each case's data in turn from one Rng, so the
// order matters.
import type { MatmulOptions } from '../../engine/matmul.js';

/**
 * Tolerance: inputs are uniform in [-1, 1], so |each product| <= 1 and the f32 rounding error
 * of a K-term sum stays below about K * eps; we allow 4 K eps (eps = 2^-23) plus rtol 1e-5.
 */
export const matmulTol = (K: number) => ({ rtol: 1e-5, atol: 4 * Math.max(K, 1) * 2 ** -23 });

export interface MatmulCase {
  name: string;
  a: number[];
  b: number[];
  opts?: Omit<MatmulOptions, 'bias'> & { bias?: boolean };
}

// Awkward shapes: primes, 1s, tall-skinny, batched, broadcast batches, transposed operands,
// fused bias + relu, K = 0.
export const MATMUL_CASES: MatmulCase[] = [
  { name: '1x1x1', a: [1, 1], b: [1, 1] },
  { name: 'primes 7x13x5', a: [7, 13], b: [13, 5] },
  { name: '65x33x17', a: [65, 33], b: [33, 17] },
  { name: 'tall-skinny [1000,3] x [3,5]', a: [1000, 3], b: [3, 5] },
  { name: 'multi-tile 70x40x132 (N % 4 == 0)', a: [70, 40], b: [40, 132] },
  { name: 'batched [3,17,9] x [3,9,11]', a: [3, 17, 9], b: [3, 9, 11] },
  { name: 'many batches [40,3,5] x [40,5,2]', a: [40, 3, 5], b: [40, 5, 2] },
  { name: 'broadcast B [2,5,6] x [6,4]', a: [2, 5, 6], b: [6, 4] },
  { name: 'broadcast A [5,6] x [2,6,4]', a: [5, 6], b: [2, 6, 4] },
  { name: 'suffix broadcast [2,3,4,5] x [3,5,6]', a: [2, 3, 4, 5], b: [3, 5, 6] },
  { name: 'leading-1 batch [1,4,5] x [3,5,7]', a: [1, 4, 5], b: [3, 5, 7] },
  { name: 'transA [13,7]^T x [13,5]', a: [13, 7], b: [13, 5], opts: { transA: true } },
  { name: 'transB [7,13] x [5,13]^T', a: [7, 13], b: [5, 13], opts: { transB: true } },
  { name: 'transB, N % 4 == 0: [9,13] x [8,13]^T', a: [9, 13], b: [8, 13], opts: { transB: true } },
  { name: 'transA+transB batched [3,13,7]^T x [3,12,13]^T', a: [3, 13, 7], b: [3, 12, 13], opts: { transA: true, transB: true } },
  { name: 'bias+relu 70x40x130', a: [70, 40], b: [40, 130], opts: { bias: true, activation: 'relu' } },
  { name: 'bias+relu 33x20x64 batched', a: [2, 33, 20], b: [20, 64], opts: { bias: true, activation: 'relu' } },
  { name: 'bias only, transB [11,6] x [9,6]^T', a: [11, 6], b: [9, 6], opts: { bias: true, transB: true } },
  { name: 'K = 0 with bias', a: [3, 0], b: [0, 4], opts: { bias: true } },
];
