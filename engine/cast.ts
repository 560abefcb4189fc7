// Casts between f32 and f16 tensors with autograd: the gradient is cast back to the input's
// type. Mixed precision makes its f16 copies of f32 master weights and activations this way,
// and the gradients of the f16 copies arrive on the masters in f32. Launches shaders/cast.wgsl.
import { record } from './autograd.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type FloatDType, type Tensor, empty, share } from './tensor.js';

/** n: items (vec4s, or scalars where a buffer does not hold whole vec4s). */
const CAST_PARAMS = paramBlock({ n: 'u32' });

const WGSL_TYPE = { f32: { 1: 'f32', 4: 'vec4f' }, f16: { 1: 'f16', 4: 'vec4<f16>' } } as const;

/** x's values as a new tensor of `dtype` (no autograd). */
function convertRaw(x: Tensor, dtype: FloatDType): Tensor {
  const from = x.dtype as FloatDType;
  const y = empty(x.shape, dtype);
  if (y.size === 0) return y;
  const vec4s = Math.ceil(y.size / 4);
  const w = x.buffer.size >= vec4s * (from === 'f16' ? 8 : 16) && y.buffer.size >= vec4s * (dtype === 'f16' ? 8 : 16) ? 4 : 1;
  const n = Math.ceil(y.size / w);
  const k = shaderKernel('cast', 'convert', { IN: WGSL_TYPE[from][w], OUT: WGSL_TYPE[dtype][w] }, CAST_PARAMS);
  rt().dispatch(k, [x.buffer, y.buffer], CAST_PARAMS.pack({ n }), grid1d(Math.ceil(n / 256)));
  return y;
}

/**
 * `x` as `dtype` ('f32' or 'f16'; f16 needs a device with shader-f16). To f16, values round to
 * the nearest half (ties to even on our devices), beyond the f16 range to infinity; to f32,
 * exactly. Gradient: cast back to x's type (unless it already has it). A cast to x's own type is a view of x (no copy)
 * whose gradient passes through.
 */
export function castTo(x: Tensor, dtype: FloatDType): Tensor {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new Error(`castTo: expected an f32 or f16 tensor, got ${x.describe()}`);
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`castTo: dtype must be 'f32' or 'f16', got ${JSON.stringify(dtype)}`);
  const from: FloatDType = x.dtype;
  if (from === dtype) return record(share(x), 'castTo', [x], [], (g) => [g]);
  // A gradient already in x's type passes through (the conv ops give f32 weight gradients for
  // the f16 copies of f32 weights).
  return record(convertRaw(x, dtype), 'castTo', [x], [], (g) => [g.dtype === from ? g : convertRaw(g, from)]);
}
