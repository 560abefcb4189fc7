// One VQ-VAE training step, platform-free: the Node trainer and the studio page's worker run
// this same code, so a step in the browser is the step `npm run train` takes.
import { backward } from '../engine/autograd.js';
import type { LossScaler } from '../engine/loss_scale.js';
import type { Adam } from '../engine/optim.js';
import { Tensor, tensor, tidy } from '../engine/tensor.js';
import type { ForwardResult, Precision, VqVae } from '../model/vqvae.js';
import { IMAGE_SIZE, u8ToFloat } from './data/preprocess.js';

/**
 * The f32 value of each image byte, computed by the CPU path itself (u8ToFloat), for widening
 * uint8 batches on the GPU (engine/upload.ts ByteInput) into exactly the CPU's floats.
 */
export function imageByteTable(): Float32Array {
  return u8ToFloat(Uint8Array.from({ length: 256 }, (_, i) => i));
}

/** The learning rate of step `t` (0-based): constant, or cosine decay to 0 over `steps`. */
export function lrAt(c: { lr: number; lrSchedule: string; steps: number }, t: number): number {
  if (c.lrSchedule === 'cosine') return (c.lr * (1 + Math.cos((Math.PI * Math.min(Math.max(t, 0), c.steps)) / c.steps))) / 2;
  return c.lr;
}

/** How a step computes: the forward's precision, and with f16 the loss scaler of its backward. */
export interface StepPrecision {
  precision: Precision;
  /** Scales the loss before backward and unscales in the optimiser's update (f16). */
  scaler: LossScaler | null;
}

const F32: StepPrecision = { precision: 'f32', scaler: null };

/**
 * Forward and backward on a batch (NCHW floats in [-0.5, 0.5], `count` images; an array is
 * uploaded, a tensor already on the device is used as it is): gradients land on the
 * parameters and, with an EMA codebook, the codebook is updated. `record` sees the forward's
 * outputs inside the tidy scope (keep() what must outlive it).
 */
export function stepGradients(model: VqVae, batch: Float32Array | Tensor, count: number, record: (o: ForwardResult) => void, how: StepPrecision = F32): void {
  tidy(() => {
    const x = batch instanceof Tensor ? batch : tensor(batch, [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
    const o = model.forward(x, { train: true, precision: how.precision });
    backward(how.scaler ? how.scaler.scaleLoss(o.loss) : o.loss);
    record(o);
  });
}

/** The optimiser's update from the gradients (unscaled by `scaler`, if any), which are then cleared for the next step. */
export function stepOptimizer(opt: Adam, scaler: LossScaler | null = null): void {
  if (scaler) scaler.step(opt);
  else opt.step();
  opt.zeroGrad();
}

/** A whole training step: stepGradients then stepOptimizer. */
export function trainStep(model: VqVae, opt: Adam, batch: Float32Array | Tensor, count: number, record: (o: ForwardResult) => void): void {
  stepGradients(model, batch, count, record);
  stepOptimizer(opt);
}
