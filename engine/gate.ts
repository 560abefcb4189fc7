// The gated activation tanh(a) * sigmoid(b) of gated PixelCNN (launches shaders/gate.wgsl).
import { record } from './autograd.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, assertDType, empty } from './tensor.js';

/** n: output elements; cs: elements per channel half of one batch entry (C * spatial). */
const GATE_PARAMS = paramBlock({ n: 'u32', cs: 'u32' });

const forwardKernel = shaderKernel('gate', 'forward', { BINDINGS: '@group(0) @binding(1) var<storage, read_write> y: array<f32>;', UNIFORM: 2 }, GATE_PARAMS);
const backwardKernel = shaderKernel(
  'gate',
  'backward',
  { BINDINGS: '@group(0) @binding(1) var<storage, read> g: array<f32>;\n@group(0) @binding(2) var<storage, read_write> dx: array<f32>;', UNIFORM: 3 },
  GATE_PARAMS,
);

/**
 * x [B, 2C, ...] -> [B, C, ...]: tanh(x[:, :C]) * sigmoid(x[:, C:]), fused forward and
 * backward (one pass each).
 */
export function gatedActivation(x: Tensor): Tensor {
  assertDType('gatedActivation', 'f32', x);
  if (x.rank < 2 || x.shape[1] % 2 !== 0) {
    throw new Error(`gatedActivation: needs an even channel axis (axis 1) to split in two, got ${x.describe()}`);
  }
  const [b, c2, ...rest] = x.shape;
  const c = c2 / 2;
  const s = rest.reduce((a, d) => a * d, 1);
  const y = empty([b, c, ...rest]);
  const params = GATE_PARAMS.pack({ n: y.size, cs: c * s });
  if (y.size > 0) rt().dispatch(forwardKernel, [x.buffer, y.buffer], params, grid1d(Math.ceil(y.size / 256)));
  return record(y, 'gatedActivation', [x], [x], (g, [sx]) => {
    const dx = empty(sx.shape);
    if (g.size > 0) rt().dispatch(backwardKernel, [sx.buffer, g.buffer, dx.buffer], params, grid1d(Math.ceil(g.size / 256)));
    return [dx];
  });
}
