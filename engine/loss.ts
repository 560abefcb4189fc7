// Losses. mseLoss launches shaders/loss.wgsl: chunked partial sums of squared differences,
// then one workgroup reduces them in a fixed order (deterministic, no float atomics).
import { record } from './autograd.js';
import { grid1d, rt, type Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';
import { type Tensor, assertDType, empty } from './tensor.js';

const kernels = new Map<string, Kernel>();
function kernel(name: string): Kernel {
  let k = kernels.get(name);
  if (!k) {
    k = { name: `loss.${name}`, key: `loss.${name}`, code: () => wgslKernel('loss', name) };
    kernels.set(name, k);
  }
  return k;
}

/** Elements summed by one workgroup of mse_partial (256 threads x PER_THREAD in loss.wgsl). */
export const MSE_CHUNK = 256 * 16;

/** A uniform block of one u32 followed by f32 values. */
function params(n: number, ...floats: number[]): Uint32Array {
  const u = new Uint32Array(1 + floats.length);
  u[0] = n;
  new Float32Array(u.buffer).set(floats, 1);
  return u;
}

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
  r.dispatch(kernel('mse_partial'), [pred.buffer, target.buffer, partial.buffer], new Uint32Array([n]), grid1d(parts));
  const out = empty([]);
  r.dispatch(kernel('mse_final'), [partial.buffer, out.buffer], params(parts, n), [1]);
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
    rt().dispatch(kernel('mse_grad2'), [...bufs, dp.buffer, dt.buffer], params(n, scale), grid);
    return [dp, dt];
  }
  const d = empty(pred.shape);
  rt().dispatch(kernel('mse_grad1'), [...bufs, d.buffer], params(n, wantP ? scale : -scale), grid);
  return wantP ? [d, null] : [null, d];
}
