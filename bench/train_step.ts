// Training-step benchmarks: one full step of the VQ-VAE (forward with the quantiser and the
// three loss terms, backward, Adam) at batch 32 and 256 with the seed's model, and the CPU
// quick preset's model at batch 8. The batch is already on the device (as in tfjs's case).
// Each wall sample runs steps back to back with one sync at the end, as training does (and as
// bench/torch_ref.py times PyTorch's arms); images/s = batch / wall seconds per step. With
// --vs tfjs the same model's step is built from tfjs-webgpu ops (tf.variableGrads through an
// Adam optimizer's minimize): NHWC convolutions, a matmul-based nearest-code search and code
// lookup (one-hot x codebook), a straight-through estimator via tf.customGrad.
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import { backward } from '../engine/autograd.js';
import { Adam } from '../engine/optim.js';
import { LossScaler } from '../engine/loss_scale.js';
import { keep, tensor, tidy } from '../engine/tensor.js';
import { type VqVaeConfig, resolveConfig } from '../model/config.js';
import { paramSpecs } from '../model/params.js';
import { type Precision, VqVae } from '../model/vqvae.js';
import { syntheticFaces } from '../train/data/synthetic.js';
import type { BenchCase } from './harness.js';
import { type Tf, tfjsGradients } from './tfjs_common.js';

/** FLOPs of one step: every conv's forward, input gradient and weight gradient (the first conv needs no input gradient), plus the nearest-code search. */
export function stepFlops(c: VqVaeConfig, B: number): number {
  const H = c.hidden;
  const h2 = Math.max(1, Math.floor(H / 2));
  const R = c.residualHidden;
  const D = c.embeddingDim;
  const f = (ci: number, co: number, o: number, k: number) => 2 * B * ci * co * o * o * k * k;
  const first = f(c.inChannels, h2, 32, 4);
  const fwd =
    first +
    f(h2, H, 16, 4) +
    f(H, H, 16, 3) +
    2 * c.residualBlocks * (f(H, R, 16, 3) + f(R, H, 16, 1)) +
    f(H, D, 16, 1) +
    f(D, H, 16, 3) +
    f(h2, H, 16, 4) + // decoder convT 1: the transpose of a conv h2 -> H at 16x16
    f(c.inChannels, h2, 32, 4); // convT 2: of a conv 3 -> h2 at 32x32
  const vq = 2 * B * 256 * c.codebookSize * D;
  return 3 * fwd - first + vq;
}

/** A step of model `label` at batch B; precision f16 (devices with shader-f16) adds dynamic loss scaling, as training does. */
function ourCase(label: string, partial: Partial<VqVaeConfig>, B: number, reps: number, precision: Precision = 'f32'): BenchCase {
  const cfg = resolveConfig(partial);
  const params = paramSpecs(cfg).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return {
    name: `train_step.${label}${precision === 'f16' ? '.f16' : ''}.b${B}`,
    family: 'train_step',
    params: { model: label, batch: B, hidden: cfg.hidden, K: cfg.codebookSize, D: cfg.embeddingDim, precision },
    flops: stepFlops(cfg, B),
    // weights, gradients and Adam's two moments read and written once, plus the batch
    bytes: params * 4 * 6 + B * 3 * 64 * 64 * 4,
    reps,
    warmup: 1,
    // a CPU device takes seconds per step: two back to back show the same overlap
    backToBack: { gpu: 20, cpu: 2 },
    images: B,
    unavailable: (caps) => (precision === 'f16' && !caps.shaderF16 ? 'the device has no shader-f16' : null),
    setup: () => {
      const model = new VqVae(cfg, { seed: 1 });
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const x = keep(tensor(syntheticFaces(B, 0), [B, 3, 64, 64]));
      const scaler = precision === 'f16' ? new LossScaler() : null;
      return {
        run: () => {
          tidy(() => {
            const o = model.forward(x, { train: true, precision });
            backward(scaler ? scaler.scaleLoss(o.loss) : o.loss);
          });
          if (scaler) scaler.step(opt);
          else opt.step();
          opt.zeroGrad();
        },
        dispose: () => {
          x.dispose();
          scaler?.dispose();
          opt.dispose();
          model.dispose();
        },
      };
    },
    tfjs: async (tf) => {
      // the optimizer's minimize needs tfjs's gradient functions, registered on request
      await tfjsGradients();
      return tfjsStep(tf, cfg, B);
    },
  };
}

/** The same step in tfjs-webgpu (NHWC; filters [kh, kw, in, out], conv2dTranspose [kh, kw, out, in]). */
function tfjsStep(tf: Tf, c: VqVaeConfig, B: number): { work: () => TfTensor; dispose: () => void } {
  const specs = paramSpecs(c);
  const vars = new Map<string, TfTensor>();
  specs.forEach((s, i) => {
    const shape = s.shape.length === 4 ? [s.shape[2], s.shape[3], s.shape[1], s.shape[0]] : s.shape;
    vars.set(s.name, tf.variable(tf.randomUniform(shape, -s.bound, s.bound, 'float32', 100 + i), true, `p${i}`));
  });
  const p = (n: string) => vars.get(n)! as any;
  const x = tf.tensor4d(nhwc(syntheticFaces(B, 0), B), [B, 64, 64, 3]);
  const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  // stop-gradient: identity forward, zero gradient
  const sg = tf.customGrad((a: any, save: any) => {
    save([]);
    return { value: tf.clone(a), gradFunc: (dy: any) => tf.zerosLike(dy) };
  }) as unknown as (a: TfTensor) => TfTensor;
  const H = c.hidden;
  const h2 = Math.max(1, Math.floor(H / 2));
  const D = c.embeddingDim;
  const K = c.codebookSize;
  const conv = (h: any, name: string, stride: number, pad: number, bias = true) => {
    const y = tf.conv2d(h, p(`${name}.weight`), stride, pad);
    return bias ? tf.add(y, p(`${name}.bias`)) : y;
  };
  const convT = (h: any, name: string, outC: number) => {
    const [n, hh, ww] = h.shape;
    return tf.add(tf.conv2dTranspose(h, p(`${name}.weight`), [n, hh * 2, ww * 2, outC], 2, 1), p(`${name}.bias`));
  };
  const stack = (h: any, prefix: string) => {
    for (let i = 0; i < c.residualBlocks; i++) {
      const b = `${prefix}._residual_stack._layers.${i}._block`;
      const r = tf.relu(tf.conv2d(tf.relu(h), p(`${b}.1.weight`), 1, 1));
      h = tf.add(h, tf.conv2d(r, p(`${b}.3.weight`), 1, 0));
    }
    return tf.relu(h);
  };
  const lossFn = (): any => {
    let h: any = tf.relu(conv(x, '_encoder._conv_1', 2, 1));
    h = tf.relu(conv(h, '_encoder._conv_2', 2, 1));
    h = conv(h, '_encoder._conv_3', 1, 1);
    h = stack(h, '_encoder');
    const ze = conv(h, '_pre_vq_conv', 1, 0); // [B, 16, 16, D]
    const z = tf.reshape(ze, [-1, D]);
    const E = p('_vq_vae._embedding.weight'); // [K, D]
    const zs = sg(z);
    const Es = sg(E);
    const dist = tf.add(tf.sub(tf.sum(tf.square(zs), 1, true), tf.mul(2, tf.matMul(zs, Es, false, true))), tf.reshape(tf.sum(tf.square(Es), 1), [1, K]));
    // one-hot x codebook rather than gather: tfjs's GatherV2 gradient fails on indices that
    // depend on variables ("gradient of input indices must have 'float32' dtype")
    const zq = tf.matMul(tf.oneHot(tf.argMin(dist, 1), K), E);
    const codebookLoss = tf.mean(tf.square(tf.sub(zq, zs)));
    const commitment = tf.mul(c.beta, tf.mean(tf.square(tf.sub(sg(zq), z))));
    const zst = tf.add(z, sg(tf.sub(zq, z)));
    h = conv(tf.reshape(zst, [B, 16, 16, D]), '_decoder._conv_1', 1, 1);
    h = stack(h, '_decoder');
    h = tf.relu(convT(h, '_decoder._conv_trans_1', h2));
    const xHat = convT(h, '_decoder._conv_trans_2', c.inChannels);
    const recon = tf.mean(tf.square(tf.sub(xHat, x)));
    return tf.add(tf.add(recon, codebookLoss), commitment);
  };
  const varList = [...vars.values()] as any[];
  return {
    work: () => opt.minimize(lossFn, true, varList) as TfTensor,
    dispose: () => {
      opt.dispose();
      tf.dispose([x, ...vars.values()]);
    },
  };
}

function nhwc(nchw: Float32Array, B: number): Float32Array {
  const out = new Float32Array(nchw.length);
  const S = 64 * 64;
  for (let b = 0; b < B; b++) {
    for (let ch = 0; ch < 3; ch++) {
      for (let i = 0; i < S; i++) out[(b * S + i) * 3 + ch] = nchw[(b * 3 + ch) * S + i];
    }
  }
  return out;
}

export const benchCases: BenchCase[] = [
  ourCase('seed', {}, 32, 3),
  ourCase('seed', {}, 256, 2),
  ourCase('quick', { hidden: 64, residualHidden: 32 }, 8, 5),
  ourCase('quick', { hidden: 64, residualHidden: 32 }, 8, 5, 'f16'),
];
