// Fused log-softmax + cross-entropy (launches shaders/cross_entropy.wgsl).
import { record } from './autograd.js';
import { mean } from './reduce.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, assertDType, empty } from './tensor.js';

const BINDINGS = {
  forward: `@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;`,
  backward: `@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;`,
};

/** rows: B * spatial; k: classes; s: spatial positions; scale: the backward's 1 / rows (0 forward). */
const CE_PARAMS = paramBlock({ rows: 'u32', k: 'u32', s: 'u32', scale: 'f32' });

const forwardKernel = shaderKernel('cross_entropy', 'forward', { BINDINGS: BINDINGS.forward, UNIFORM: 4 }, CE_PARAMS);
const backwardKernel = shaderKernel('cross_entropy', 'backward', { BINDINGS: BINDINGS.backward, UNIFORM: 5 }, CE_PARAMS);

/**
 * mean over rows of -log softmax(logits)[target], the class axis being axis 1: logits [N, K]
 * with targets [N], or score maps [B, K, ...spatial] with targets [B, ...spatial]. Targets are
 * u32 or i32 class indices; an index outside [0, K) makes the loss NaN. Returns a scalar [].
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  assertDType('crossEntropy', 'f32', logits);
  if (targets.dtype === 'f32') throw new Error(`crossEntropy: targets must be integer class indices, got ${targets.describe()}`);
  if (logits.rank < 2) throw new Error(`crossEntropy: logits need a class axis (axis 1), got ${logits.describe()}`);
  const [b, k, ...spatial] = logits.shape;
  const want = [b, ...spatial];
  if (targets.shape.join() !== want.join()) {
    throw new Error(`crossEntropy: targets [${targets.shape.join(', ')}] do not match logits [${logits.shape.join(', ')}] (expected [${want.join(', ')}])`);
  }
  const s = spatial.reduce((a, c) => a * c, 1);
  const rows = b * s;
  if (rows === 0 || k === 0) throw new Error(`crossEntropy: empty logits ${logits.describe()}`);
  const lse = empty([rows]);
  const losses = empty([rows]);
  rt().dispatch(forwardKernel, [logits.buffer, targets.buffer, lse.buffer, losses.buffer], CE_PARAMS.pack({ rows, k, s, scale: 0 }), grid1d(Math.ceil(rows / 64)));
  const loss = mean(losses);
  losses.dispose();
  record(loss, 'crossEntropy', [logits], [logits, targets, lse], (g, [lg, tg, ls]) => {
    const d = empty(lg.shape);
    rt().dispatch(backwardKernel, [lg.buffer, tg.buffer, ls.buffer, g.buffer, d.buffer], CE_PARAMS.pack({ rows, k, s, scale: 1 / rows }), grid1d(Math.ceil((rows * k) / 256)));
    return [d];
  });
  lse.dispose(); // the graph node holds its own reference when it needs it
  return loss;
}
