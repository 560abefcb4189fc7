// tfjs-webgpu as a comparison peer, the platform-free part: timing, syncing and the shared work
// builders, used by the Node bench (through bench/tfjs.ts, which loads tfjs on Dawn) and by the
// browser page (bench/browser_page.ts, which loads it on `navigator.gpu`). No node:* here.
import type { Tensor } from '@tensorflow/tfjs-core';

export type Tf = typeof import('@tensorflow/tfjs-core');

// Registering tfjs's gradient functions differs by platform (Node needs a module-loader hook,
// a page bundles the file), so each platform hands its way in here and cases just ask for it.
let gradientLoader: (() => Promise<void>) | null = null;

/** Sets how this platform registers tfjs's gradient functions (bench/tfjs.ts, bench/browser_page.ts). */
export function setTfjsGradientLoader(load: () => Promise<void>): void {
  gradientLoader = load;
}

/** Registers tfjs's gradient functions (tf.grads, optimizers) once, the platform's way. */
export async function tfjsGradients(): Promise<void> {
  if (!gradientLoader) {
    throw new Error('tfjsGradients: no gradient loader set: load tfjs through bench/tfjs.ts (Node) or bench/browser_page.ts (browser)');
  }
  await gradientLoader();
}

/**
 * Waits until all the work tfjs has queued so far has run on the GPU. The cheap path submits
 * tfjs's pending command encoder and awaits `queue.onSubmittedWorkDone()` (no extra kernel, no
 * readback); it relies on WebGPUBackend internals, so if they are missing it falls back to
 * reading back one element of `probe`.
 */
export async function syncTfjs(tf: Tf, probe?: Tensor): Promise<void> {
  const b = tf.backend() as any;
  if (
    b?.device?.queue &&
    typeof b.ensureCommandEncoderReady === 'function' &&
    typeof b.endComputePassEncoder === 'function' &&
    typeof b.submitQueue === 'function'
  ) {
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    b.submitQueue();
    await (b.device as GPUDevice).queue.onSubmittedWorkDone();
    return;
  }
  if (probe) {
    const one = tf.tidy(() => tf.slice(tf.reshape(probe, [-1]), [0], [1]));
    await one.data();
    one.dispose();
  }
}

export interface TimeOptions {
  warmup: number;
  reps: number;
}

/**
 * Wall-clock milliseconds of each of `reps` repetitions of `work` (after `warmup` untimed
 * ones). Each repetition runs `work` inside tf.tidy, waits for the GPU to finish everything it
 * queued, then disposes its results, so memory stays flat.
 */
export async function timeTfjs(
  tf: Tf,
  work: () => Tensor | Tensor[],
  opts: TimeOptions,
): Promise<number[]> {
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    const out = tf.tidy(work);
    const outs = Array.isArray(out) ? out : [out];
    await syncTfjs(tf, outs[0]);
    const ms = performance.now() - t0;
    tf.dispose(outs);
    return ms;
  };
  await syncTfjs(tf); // start from an idle queue
  for (let i = 0; i < opts.warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < opts.reps; i++) times.push(await once());
  return times;
}

/**
 * A `timeTfjs` closure multiplying two random [m,k] x [k,n] f32 tensors, created (and kept)
 * once; call `.dispose()` on the closure when done with them. FLOPs per call: `.flops`.
 */
export function tfjsMatmul(
  tf: Tf,
  m: number,
  k: number,
  n: number,
): (() => Tensor) & { a: Tensor; b: Tensor; flops: number; dispose: () => void } {
  const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
  const b = tf.randomUniform([k, n], -1, 1, 'float32', 2);
  const work = () => tf.matMul(a, b);
  return Object.assign(work, {
    a,
    b,
    flops: 2 * m * k * n,
    dispose: () => {
      a.dispose();
      b.dispose();
    },
  });
}
