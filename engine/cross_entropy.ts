// Fused log-softmax + cross-entropy (launches shaders/cross_entropy.wgsl).
import { record } from './autograd.js';
import { mean } from './reduce.js';
import { grid1d, rt, type Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';
import { type Tensor, assertDType, empty } from './tensor.js';

const BINDINGS = {
  forward: `@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;`,
  backward: `@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;`,
};

const kernels = new Map<string, Kernel>();
function kernel(name: 'forward' | 'backward'): Kernel {
  let k = kernels.get(name);
  if (!k) {
    const uniform = name === 'forward' ? 4 : 5;
    k = { name: `cross_entropy.${name}`, key: `cross_entropy.${name}`, code: () => wgslKernel('cross_entropy', name, { BINDINGS: BINDINGS[name], UNIFORM: uniform }) };
    kernels.set(name, k);
  }
  return k;
}

function params(rows: number, k: number, s: number, scale: number): Uint32Array {
  const u = new Uint32Array(4);
  u.set([rows, k, s]);
  new Float32Array(u.buffer)[3] = scale;
  return u;
}

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
  rt().dispatch(kernel('forward'), [logits.buffer, targets.buffer, lse.buffer, losses.buffer], params(rows, k, s, 0), grid1d(Math.ceil(rows / 64)));
  const loss = mean(losses);
  losses.dispose();
  record(loss, 'crossEntropy', [logits], [logits, targets, lse], (g, [lg, tg, ls]) => {
    const d = empty(lg.shape);
    rt().dispatch(kernel('backward'), [lg.buffer, tg.buffer, ls.buffer, g.buffer, d.buffer], params(rows, k, s, 1 / rows), grid1d(Math.ceil((rows * k) / 256)));
    return [d];
  });
  lse.dispose(); // the graph node holds its own reference when it needs it
  return loss;
}
