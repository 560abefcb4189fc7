// One VQ-VAE training step, platform-free: the Node trainer and the studio page's worker run
// this same code, so a step in the browser is the step `npm run train` takes.
import { backward } from '../engine/autograd.js';
import type { Adam } from '../engine/optim.js';
import { tensor, tidy } from '../engine/tensor.js';
import type { ForwardResult, VqVae } from '../model/vqvae.js';
import { IMAGE_SIZE } from './data/preprocess.js';

/** The learning rate of step `t` (0-based): constant, or cosine decay to 0 over `steps`. */
export function lrAt(c: { lr: number; lrSchedule: string; steps: number }, t: number): number {
  if (c.lrSchedule === 'cosine') return (c.lr * (1 + Math.cos((Math.PI * Math.min(Math.max(t, 0), c.steps)) / c.steps))) / 2;
  return c.lr;
}

/**
 * Forward and backward on a batch (NCHW floats in [-0.5, 0.5], `count` images): gradients land
 * on the parameters and, with an EMA codebook, the codebook is updated. `record` sees the
 * forward's outputs inside the tidy scope (keep() what must outlive it).
 */
export function stepGradients(model: VqVae, batch: Float32Array, count: number, record: (o: ForwardResult) => void): void {
  tidy(() => {
    const x = tensor(batch, [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
    const o = model.forward(x, { train: true });
    backward(o.loss);
    record(o);
  });
}

/** The optimiser's update from the gradients, which are then cleared for the next step. */
export function stepOptimizer(opt: Adam): void {
  opt.step();
  opt.zeroGrad();
}

/** A whole training step: stepGradients then stepOptimizer. */
export function trainStep(model: VqVae, opt: Adam, batch: Float32Array, count: number, record: (o: ForwardResult) => void): void {
  stepGradients(model, batch, count, record);
  stepOptimizer(opt);
}
