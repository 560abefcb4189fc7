// Vector-quantiser benchmark cases at the seed's shape (a batch of 256 images x 16x16 latents:
// N = 65,536 rows of D = 64) against K = 128 / 256 / 512 codes:
// * "vq nearest fused": our fused nearest-code kernel (||e||^2 included in the timing);
// * "vq nearest matmul+argmin": our unfused path, a GEMM z @ (-2E)^T with ||e||^2 as the fused
//   bias, materialising the N x K distances, then argmin over codes;
// * with `--vs tfjs`, both cases compare against tfjs-webgpu's best equivalent:
//   tf.argMin(tf.fused.matMul(z, -2E, transposeB, bias ||e||^2), 1);
// * "vq step": the whole quantiser step of training (search, gather, losses, backward into z
//   and the codebook, counts and perplexity).
import { backward } from '../engine/autograd.js';
import { scale } from '../engine/elementwise.js';
import { flags } from '../engine/flags.js';
import { matmul } from '../engine/matmul.js';
import { argmin } from '../engine/reduce.js';
import { rt } from '../engine/runtime.js';
import { rand } from '../engine/tensor.js';
import { codeCounts, codebookNorms, codebookStats, describeNearestPlan, nearestCode, planNearest, vectorQuantize } from '../engine/vq.js';
import type { BenchCase, TfjsWork } from './harness.js';
import { matmulPlanLine } from './matmul.js';
import type { Tf } from './tfjs_common.js';

const N = 65536;
const D = 64;

/** The fused nearest-code plan as the bench prints it: the kernel and its grid. */
function nearestPlanLine(k: number): string {
  const p = planNearest({ n: N, k, d: D }, rt().caps, flags());
  return `${describeNearestPlan(p)} grid ${p.grid.join('x')}`;
}

/** tfjs-webgpu's distance GEMM (bias fused) + argMin over codes. */
function tfjsNearest(tf: Tf, n: number, k: number, d: number): TfjsWork {
  const z = tf.randomUniform([n, d], -1, 1, 'float32', 1);
  const e = tf.randomUniform([k, d], -1, 1, 'float32', 2);
  const em2 = tf.mul(e, -2);
  const norms = tf.sum(tf.square(e), 1);
  return {
    work: () => tf.argMin(tf.fused.matMul({ a: z, b: em2, transposeB: true, bias: norms }), 1),
    dispose: () => tf.dispose([z, e, em2, norms]),
  };
}

function nearestCase(k: number, fused: boolean): BenchCase {
  return {
    name: fused ? `vq nearest fused N=${N} D=${D} K=${k}` : `vq nearest matmul+argmin N=${N} D=${D} K=${k}`,
    family: 'vq',
    params: { n: N, k, d: D, path: fused ? 'fused' : 'matmul+argmin' },
    flops: 2 * N * k * D,
    // fused: z, E and the indices once; unfused also writes and reads the N x K distances
    bytes: 4 * (N * D + k * D + N + (fused ? 0 : 2 * N * k)),
    reps: 5,
    warmup: 1,
    plan: () => (fused ? nearestPlanLine(k) : `matmul ${matmulPlanLine({ M: N, N: k, K: D, transB: true })} + argmin`),
    setup: () => {
      const z = rand([N, D], { low: -1, high: 1 });
      const e = rand([k, D], { low: -1, high: 1 });
      if (fused) {
        return {
          run: () => nearestCode(z, e).indices.dispose(),
          dispose: () => {
            z.dispose();
            e.dispose();
          },
        };
      }
      const em2 = scale(e, -2);
      const norms = codebookNorms(e);
      return {
        run: () => {
          const dist = matmul(z, em2, { transB: true, bias: norms });
          argmin(dist, 1).dispose();
          dist.dispose();
        },
        dispose: () => {
          for (const x of [z, e, em2, norms]) x.dispose();
        },
      };
    },
    tfjs: (tf) => tfjsNearest(tf, N, k, D),
  };
}

function stepCase(k: number): BenchCase {
  return {
    name: `vq step (search+gather+losses+backward+stats) N=${N} D=${D} K=${k}`,
    family: 'vq',
    params: { n: N, k, d: D, path: 'step' },
    flops: 2 * N * k * D,
    bytes: 4 * (4 * N * D + 2 * k * D),
    reps: 5,
    warmup: 1,
    plan: () => `nearest ${nearestPlanLine(k)}`,
    setup: () => {
      const z = rand([N, D], { low: -1, high: 1 }).requireGrad();
      const e = rand([k, D], { low: -1 / k, high: 1 / k }).requireGrad();
      return {
        run: () => {
          const q = vectorQuantize(z, e, { beta: 1.25 });
          backward(q.zq, { grad: q.zq, retainGraph: true }); // stands in for the decoder's gradient
          backward(q.loss);
          const counts = codeCounts(q.indices, k);
          const s = codebookStats(counts);
          for (const x of [counts, s.perplexity, s.used, z.grad, e.grad, ...Object.values(q)]) x?.dispose();
          z.grad = null;
          e.grad = null;
        },
        dispose: () => {
          z.dispose();
          e.dispose();
        },
      };
    },
  };
}

export const benchCases: BenchCase[] = [
  ...[512, 256, 128].flatMap((k) => [nearestCase(k, true), nearestCase(k, false)]),
  stepCase(512),
];
