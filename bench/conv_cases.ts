// Convolution benchmark cases: every conv and transposed conv of the seed model (../shared/SPEC.md
// section 1) at batch 32 and 256, forward / input gradient / weight gradient each, plus one whole
// encoder + decoder forward and backward (identity in place of the quantiser). With --vs tfjs the
// same work runs through tfjs-webgpu on the same adapter (tf.conv2d, and its backprop kernels
// Conv2DBackpropInput / Conv2DBackpropFilter through the engine's runKernel; the model entry
// through tf.grads).
//
// Platform-free (no node:*), so the Node bench (bench/conv.ts, bench/run.ts) and the browser
// page (bench/browser_page.ts) time the same cases.
import { backward } from '../engine/autograd.js';
import * as C from '../engine/conv.js';
import { add, relu } from '../engine/elementwise.js';
import { flags } from '../engine/flags.js';
import { Rng } from '../engine/random.js';
import { rt } from '../engine/runtime.js';
import { Tensor, tensor } from '../engine/tensor.js';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import type { BenchCase } from './harness.js';
import { tfjsGradients } from './tfjs_common.js';

interface Layer {
  name: string;
  CI: number;
  H: number;
  CO: number;
  K: number;
  stride: number;
  pad: number;
  transposed: boolean;
}

/** The seed model's convolutions (input spatial size H x H); encoder and decoder residual
 * blocks have the same shapes, so they appear once. */
export const SEED_LAYERS: Layer[] = [
  { name: 'enc1', CI: 3, H: 64, CO: 64, K: 4, stride: 2, pad: 1, transposed: false },
  { name: 'enc2', CI: 64, H: 32, CO: 128, K: 4, stride: 2, pad: 1, transposed: false },
  { name: 'enc3', CI: 128, H: 16, CO: 128, K: 3, stride: 1, pad: 1, transposed: false },
  { name: 'res3x3', CI: 128, H: 16, CO: 32, K: 3, stride: 1, pad: 1, transposed: false },
  { name: 'res1x1', CI: 32, H: 16, CO: 128, K: 1, stride: 1, pad: 0, transposed: false },
  { name: 'prevq', CI: 128, H: 16, CO: 64, K: 1, stride: 1, pad: 0, transposed: false },
  { name: 'dec1', CI: 64, H: 16, CO: 128, K: 3, stride: 1, pad: 1, transposed: false },
  { name: 'decT1', CI: 128, H: 16, CO: 64, K: 4, stride: 2, pad: 1, transposed: true },
  { name: 'decT2', CI: 64, H: 32, CO: 3, K: 4, stride: 2, pad: 1, transposed: true },
];

function randomData(n: number, seed: number, scale = 1): Float32Array {
  const r = new Rng(seed);
  return r.uniformArray(n, -scale, scale);
}

type Pass = 'fwd' | 'dgrad' | 'wgrad';

function layerCase(l: Layer, B: number, pass: Pass): BenchCase {
  const xShape = [B, l.CI, l.H, l.H];
  const wShape = l.transposed ? [l.CI, l.CO, l.K, l.K] : [l.CO, l.CI, l.K, l.K];
  const opts = { stride: l.stride, padding: l.pad };
  // Output size (no output padding: the seed model's transposed convs double the size exactly).
  const OH = l.transposed ? (l.H - 1) * l.stride - 2 * l.pad + l.K : Math.floor((l.H + 2 * l.pad - l.K) / l.stride) + 1;
  const yShape = [B, l.CO, OH, OH];
  // 2 per multiply-add of the conv (for a transposed conv: of the conv it is the transpose of,
  // i.e. every input element times every tap), padding taps included, as usual.
  const macs = l.transposed ? B * l.CI * l.H * l.H * l.CO * l.K * l.K : B * l.CO * OH * OH * l.CI * l.K * l.K;
  const flops = 2 * macs;
  const kind = l.transposed ? 'convT' : 'conv';
  const n = (s: number[]) => s.reduce((a, b) => a * b);
  // Bytes: each pass's two inputs read once and its output written once.
  const bytes = 4 * { fwd: n(xShape) + n(wShape) + n(yShape), dgrad: n(yShape) + n(wShape) + n(xShape), wgrad: n(yShape) + n(xShape) + n(wShape) }[pass];
  return {
    name: `${kind}.${l.name}.${pass}.b${B}`,
    family: l.transposed ? 'conv_transpose2d' : 'conv2d',
    params: { layer: l.name, pass, batch: B, in: l.CI, out: l.CO, size: l.H, kernel: l.K, stride: l.stride },
    flops,
    bytes,
    ...(B > 32 ? { reps: 3, warmup: 1 } : {}),
    plan: () => {
      const g = l.transposed ? C.convTranspose2dGeometry(xShape, wShape, opts) : C.conv2dGeometry(xShape, wShape, opts);
      return C.describeConvPlan(C.planConv(pass, g, l.transposed, rt().caps, flags()));
    },
    setup: () => {
      const x = tensor(randomData(xShape.reduce((a, b) => a * b), 1), xShape);
      const w = tensor(randomData(wShape.reduce((a, b) => a * b), 2, 0.1), wShape);
      const b = tensor(randomData(l.CO, 3, 0.1), [l.CO]);
      const dy = tensor(randomData(yShape.reduce((a, b) => a * b), 4), yShape);
      const g = l.transposed ? C.convTranspose2dGeom(x, w, b, opts) : C.conv2dGeom(x, w, b, opts);
      const run = l.transposed
        ? { fwd: () => C.convTranspose2dForward(x, w, b, g), dgrad: () => C.convTranspose2dInputGrad(dy, w, g), wgrad: () => C.convTranspose2dWeightGrad(dy, x, g) }[pass]
        : { fwd: () => C.conv2dForward(x, w, b, g), dgrad: () => C.conv2dInputGrad(dy, w, g), wgrad: () => C.conv2dWeightGrad(dy, x, g) }[pass];
      return { run: () => run().dispose(), dispose: () => [x, w, b, dy].forEach((t) => t.dispose()) };
    },
    tfjs: (tf) => {
      // tfjs's native layout: NHWC activations, filters [kh, kw, in, out] (conv) or
      // [kh, kw, out, in] (conv2dTranspose).
      const x = tf.randomUniform([B, l.H, l.H, l.CI], -1, 1, 'float32', 1);
      const w = tf.randomUniform(l.transposed ? [l.K, l.K, l.CO, l.CI] : [l.K, l.K, l.CI, l.CO], -0.1, 0.1, 'float32', 2);
      const b = tf.randomUniform([l.CO], -0.1, 0.1, 'float32', 3);
      const dy = tf.randomUniform([B, OH, OH, l.CO], -1, 1, 'float32', 4);
      const s: [number, number] = [l.stride, l.stride];
      const e = tf.engine();
      // Conv2DBackpropInput computes a conv's input gradient, which is also a transposed conv.
      const backpropInput = (dyT: TfTensor, filter: TfTensor, inputShape: number[]) =>
        e.runKernel('Conv2DBackpropInput', { dy: dyT, filter }, { inputShape, strides: s, pad: l.pad, dataFormat: 'NHWC' }) as TfTensor;
      const backpropFilter = (xT: TfTensor, dyT: TfTensor, filterShape: number[]) =>
        e.runKernel('Conv2DBackpropFilter', { x: xT, dy: dyT }, { filterShape, strides: s, pad: l.pad, dataFormat: 'NHWC' }) as TfTensor;
      let work: () => TfTensor;
      if (!l.transposed) {
        work = {
          fwd: () => tf.add(tf.conv2d(x as any, w as any, s, l.pad), b),
          dgrad: () => backpropInput(dy, w, [B, l.H, l.H, l.CI]),
          wgrad: () => backpropFilter(x, dy, [l.K, l.K, l.CI, l.CO]),
        }[pass];
      } else {
        // convT(x) = Conv2DBackpropInput(x, w); its input gradient is conv2d(dy, w); its weight
        // gradient is Conv2DBackpropFilter with the conv's roles (x <- dy, dy <- x).
        work = {
          fwd: () => tf.add(backpropInput(x, w, [B, OH, OH, l.CO]), b),
          dgrad: () => tf.conv2d(dy as any, w as any, s, l.pad),
          wgrad: () => backpropFilter(dy, x, [l.K, l.K, l.CO, l.CI]),
        }[pass];
      }
      return { work, dispose: () => tf.dispose([x, w, b, dy]) };
    },
  };
}

// ---- Whole model: encoder + (identity) + decoder, forward and backward

interface ModelParams {
  [k: string]: Tensor;
}

const H = 128;
const R = 32;
const D = 64;

function modelShapes(): [string, number[]][] {
  const s: [string, number[]][] = [
    ['e1w', [64, 3, 4, 4]], ['e1b', [64]],
    ['e2w', [H, 64, 4, 4]], ['e2b', [H]],
    ['e3w', [H, H, 3, 3]], ['e3b', [H]],
  ];
  for (const p of ['er0', 'er1', 'dr0', 'dr1']) s.push([`${p}a`, [R, H, 3, 3]], [`${p}b`, [H, R, 1, 1]]);
  s.push(['pqw', [D, H, 1, 1]], ['pqb', [D]], ['d1w', [H, D, 3, 3]], ['d1b', [H]]);
  s.push(['t1w', [H, 64, 4, 4]], ['t1b', [64]], ['t2w', [64, 3, 4, 4]], ['t2b', [3]]);
  return s;
}

function modelForward(x: Tensor, p: ModelParams): Tensor {
  const s2 = { stride: 2, padding: 1 };
  const stack = (h: Tensor, pre: string) => {
    for (const i of [0, 1]) {
      const r = C.conv2d(relu(h), p[`${pre}${i}a`], null, { padding: 1, activation: 'relu' });
      h = add(h, C.conv2d(r, p[`${pre}${i}b`], null));
    }
    return relu(h);
  };
  let h = C.conv2d(x, p.e1w, p.e1b, { ...s2, activation: 'relu' });
  h = C.conv2d(h, p.e2w, p.e2b, { ...s2, activation: 'relu' });
  h = C.conv2d(h, p.e3w, p.e3b, { padding: 1 });
  h = stack(h, 'er');
  const z = C.conv2d(h, p.pqw, p.pqb);
  h = C.conv2d(z, p.d1w, p.d1b, { padding: 1 });
  h = stack(h, 'dr');
  h = C.convTranspose2d(h, p.t1w, p.t1b, { ...s2, activation: 'relu' });
  return C.convTranspose2d(h, p.t2w, p.t2b, s2);
}

/**
 * FLOPs of one forward + backward of the stack: every conv's forward, input gradient and weight
 * gradient cost the same, except that the first conv needs no input gradient.
 */
function modelFlops(B: number): number {
  // f: a conv producing co x o x o from ci channels with a k x k kernel.
  const f = (ci: number, co: number, o: number, k: number) => 2 * B * ci * co * o * o * k * k;
  const fwd = [
    f(3, 64, 32, 4), f(64, H, 16, 4), f(H, H, 16, 3),
    4 * (f(H, R, 16, 3) + f(R, H, 16, 1)),
    f(H, D, 16, 1), f(D, H, 16, 3),
    f(64, H, 16, 4), // decT1 is the transpose of a conv 64 -> 128 at 16 x 16
    f(3, 64, 32, 4), // decT2: of a conv 3 -> 64 at 32 x 32
  ].reduce((a, b) => a + b, 0);
  return 3 * fwd - f(3, 64, 32, 4);
}

function modelCase(B: number): BenchCase {
  return {
    name: `conv.model.fwdbwd.b${B}`,
    family: 'conv2d',
    params: { pass: 'model', batch: B },
    flops: modelFlops(B),
    bytes: 0,
    reps: 3,
    warmup: 1,
    setup: () => {
      const p: ModelParams = {};
      modelShapes().forEach(([n, s], i) => {
        const fan = s.length === 4 ? s[1] * s[2] * s[3] : 64;
        p[n] = tensor(randomData(s.reduce((a, b) => a * b), 10 + i, 1 / Math.sqrt(fan)), s).requireGrad();
      });
      const x = tensor(randomData(B * 3 * 64 * 64, 5, 0.5), [B, 3, 64, 64]);
      const seed = tensor(randomData(B * 3 * 64 * 64, 6), [B, 3, 64, 64]);
      return {
        run: () => {
          const y = modelForward(x, p);
          backward(y, { grad: seed });
          y.dispose();
          for (const t of Object.values(p)) {
            t.grad?.dispose();
            t.grad = null;
          }
        },
        dispose: () => [x, seed, ...Object.values(p)].forEach((t) => t.dispose()),
      };
    },
    tfjs: async (tf) => {
      // tf.grads needs tfjs's gradient functions, registered on request.
      await tfjsGradients();
      // The same stack in NHWC with tfjs filters [kh, kw, in, out] ([kh, kw, out, in] for
      // conv2dTranspose); tf.grads differentiates with respect to every parameter.
      const shapes = modelShapes();
      // Ours [out, in, kh, kw] (conv) and [in, out, kh, kw] (convT) both map to [s2, s3, s1, s0].
      const ps = shapes.map(([, s], i) =>
        tf.randomUniform(s.length === 4 ? [s[2], s[3], s[1], s[0]] : s, -0.05, 0.05, 'float32', 10 + i));
      const names = shapes.map(([n]) => n);
      const x = tf.randomUniform([B, 64, 64, 3], -0.5, 0.5, 'float32', 5);
      const seed = tf.randomUniform([B, 64, 64, 3], -1, 1, 'float32', 6);
      const forward = (...args: TfTensor[]) => {
        const q: Record<string, any> = {};
        names.forEach((n, i) => (q[n] = args[i]));
        const conv = (h: any, w: any, b: any, s: number, pad: number) => {
          const y = tf.conv2d(h, w, s, pad);
          return b ? tf.add(y, b) : y;
        };
        const convT = (h: any, w: any, b: any, outC: number) => {
          const [n, hh, ww] = h.shape;
          return tf.add(tf.conv2dTranspose(h, w, [n, hh * 2, ww * 2, outC], 2, 1), b);
        };
        const stack = (h: any, pre: string) => {
          for (const i of [0, 1]) {
            const r = tf.relu(conv(tf.relu(h), q[`${pre}${i}a`], null, 1, 1));
            h = tf.add(h, conv(r, q[`${pre}${i}b`], null, 1, 0));
          }
          return tf.relu(h);
        };
        let h = tf.relu(conv(x, q.e1w, q.e1b, 2, 1));
        h = tf.relu(conv(h, q.e2w, q.e2b, 2, 1));
        h = conv(h, q.e3w, q.e3b, 1, 1);
        h = stack(h, 'er');
        h = conv(h, q.pqw, q.pqb, 1, 0);
        h = conv(h, q.d1w, q.d1b, 1, 1);
        h = stack(h, 'dr');
        h = tf.relu(convT(h, q.t1w, q.t1b, 64));
        h = convT(h, q.t2w, q.t2b, 3);
        return tf.sum(tf.mul(h, seed));
      };
      const grads = tf.grads(forward as any);
      return { work: () => grads(ps), dispose: () => tf.dispose([...ps, x, seed]) };
    },
  };
}

/** Every conv case: each seed-model layer x {fwd, dgrad, wgrad} x batches, then the model. */
export function convCases(batches: number[] = [32, 256]): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const B of batches) {
    for (const l of SEED_LAYERS) for (const pass of ['fwd', 'dgrad', 'wgrad'] as Pass[]) cases.push(layerCase(l, B, pass));
    cases.push(modelCase(B));
  }
  return cases;
}

export const benchCases: BenchCase[] = convCases();
