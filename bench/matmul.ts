// Matmul benchmark cases: square products and the VQ codebook-distance shape
// (z [65536 x 64] @ E^T [64 x 512]: a batch of 256 images x 16x16 latents against K = 512 codes).
import { flags } from '../engine/flags.js';
import { describeMatmulPlan, matmul, planMatmul } from '../engine/matmul.js';
import { rt } from '../engine/runtime.js';
import { rand } from '../engine/tensor.js';
import type { BenchCase } from './harness.js';
import { tfjsMatmul } from './tfjs_common.js';

/** A matmul plan as the bench prints it: the kernel and its grid. */
export function matmulPlanLine(s: { M: number; N: number; K: number; transB?: boolean }): string {
  const p = planMatmul(s, rt().caps, flags());
  return `${describeMatmulPlan(p)} grid ${p.grid.join('x')}`;
}

function matmulCase(m: number, k: number, n: number, name: string, reps?: number, transB = false): BenchCase {
  return {
    name,
    family: 'matmul',
    params: { m, k, n, transB },
    flops: 2 * m * k * n,
    bytes: 4 * (m * k + k * n + m * n),
    reps,
    warmup: reps !== undefined && reps <= 3 ? 1 : 2,
    plan: () => matmulPlanLine({ M: m, N: n, K: k, transB }),
    setup: () => {
      const a = rand([m, k], { low: -1, high: 1 });
      const b = rand(transB ? [n, k] : [k, n], { low: -1, high: 1 });
      return {
        run: () => matmul(a, b, { transB }).dispose(),
        dispose: () => {
          a.dispose();
          b.dispose();
        },
      };
    },
    tfjs: (tf) => {
      if (!transB) {
        const work = tfjsMatmul(tf, m, k, n);
        return { work, dispose: work.dispose };
      }
      const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
      const b = tf.randomUniform([n, k], -1, 1, 'float32', 2);
      return { work: () => tf.matMul(a, b, false, true), dispose: () => tf.dispose([a, b]) };
    },
  };
}

export const benchCases: BenchCase[] = [
  matmulCase(256, 256, 256, 'matmul 256^3'),
  matmulCase(512, 512, 512, 'matmul 512^3'),
  matmulCase(1024, 1024, 1024, 'matmul 1024^3', 5),
  // about a second per product on a 2-core CPU device: few repetitions
  matmulCase(2048, 2048, 2048, 'matmul 2048^3', 3),
  matmulCase(65536, 64, 512, 'matmul vq-distance [65536x64]x[64x512]', 5),
  // how the VQ search reads the codebook E [512 x 64]: z @ E^T
  matmulCase(65536, 64, 512, 'matmul vq-distance z@E^T [65536x64]x[512x64]^T', 5, true),
];
