// Losses. mseLoss launches shaders/loss.wgsl: chunked partial sums of squared differences,
// then one workgroup reduces them in a fixed order (deterministic, no float atomics).
import { record } from './autograd.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, assertDType, empty } from './tensor.js';

/** Elements summed by one workgroup of mse_partial (256 threads x PER_THREAD in loss.wgsl). */
export const MSE_CHUNK = 256 * 16;

const PARTIAL_PARAMS = paramBlock({ n: 'u32' });
/** parts: partial sums; count: the mean's element count. */
const FINAL_PARAMS = paramBlock({ parts: 'u32', count: 'f32' });
/** scale: 2 / n (the gradient of pred; -2 / n that of target). */
const GRAD_PARAMS = paramBlock({ n: 'u32', scale: 'f32' });

const partialKernel = shaderKernel('loss', 'mse_partial', {}, PARTIAL_PARAMS);
const finalKernel = shaderKernel('loss', 'mse_final', {}, FINAL_PARAMS);
const grad1Kernel = shaderKernel('loss', 'mse_grad1', {}, GRAD_PARAMS);
const grad2Kernel = shaderKernel('loss', 'mse_grad2', {}, GRAD_PARAMS);

/**
 * mean((pred - target)^2) over all elements, as a 0-d tensor (shape []). Shapes must match
 * exactly. Gradients: 2 (pred - target) / n to pred, the negative to target.
 */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  assertDType('mseLoss', 'f32', pred, target);
  if (pred.shape.join() !== target.shape.join() || pred.rank !== target.rank) {
    throw new Error(`mseLoss: shapes [${pred.shape.join(', ')}] and [${target.shape.join(', ')}] differ`);
  }
  const n = pred.size;
  if (n === 0) throw new Error(`mseLoss: the mean of 0 elements is undefined (${pred.describe()})`);
  const r = rt();
  const parts = Math.ceil(n / MSE_CHUNK);
  const partial = empty([parts]);
  r.dispatch(partialKernel, [pred.buffer, target.buffer, partial.buffer], PARTIAL_PARAMS.pack({ n }), grid1d(parts));
  const out = empty([]);
  r.dispatch(finalKernel, [partial.buffer, out.buffer], FINAL_PARAMS.pack({ parts, count: n }), [1]);
  partial.dispose();
  const wants = [pred.requiresGrad, target.requiresGrad];
  return record(out, 'mseLoss', [pred, target], [pred, target], (g, [p, t]) => mseGrad(g, p, t, wants));
}

function mseGrad(g: Tensor, pred: Tensor, target: Tensor, [wantP, wantT]: boolean[]): (Tensor | null)[] {
  const n = pred.size;
  const scale = 2 / n;
  const grid = grid1d(Math.ceil(n / 256));
  const bufs = [pred.buffer, target.buffer, g.buffer];
  if (wantP && wantT) {
    const dp = empty(pred.shape);
    const dt = empty(pred.shape);
    rt().dispatch(grad2Kernel, [...bufs, dp.buffer, dt.buffer], GRAD_PARAMS.pack({ n, scale }), grid);
    return [dp, dt];
  }
  const d = empty(pred.shape);
  rt().dispatch(grad1Kernel, [...bufs, d.buffer], GRAD_PARAMS.pack({ n, scale: wantP ? scale : -scale }), grid);
  return wantP ? [d, null] : [null, d];
}
