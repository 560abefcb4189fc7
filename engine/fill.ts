// Launches shaders/fill.wgsl: writes one value into every element of a tensor.
import { kernel, paramBlock } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { wgsl } from './shaders.js';
import { f16Bits } from './half.js';
import type { DType, Tensor } from './tensor.js';

/** n: elements; bits: the value's 32 bits. */
const FILL_PARAMS = paramBlock({ n: 'u32', bits: 'u32' });

const fillKernel = kernel('fill', {}, () => wgsl('fill', { PARAMS: FILL_PARAMS.wgsl }));

/** The 32 bits that represent `value` in `dtype` (for f16: two copies of its half bits). */
export function valueBits(value: number, dtype: DType): number {
  if (dtype === 'f16') return (f16Bits(value) * 0x10001) >>> 0;
  const v = new DataView(new ArrayBuffer(4));
  if (dtype === 'f32') v.setFloat32(0, value, true);
  else if (dtype === 'i32') v.setInt32(0, value, true);
  else v.setUint32(0, value, true);
  return v.getUint32(0, true);
}

export function dispatchFill(t: Tensor, value: number): void {
  // f16 tensors fill whole words (two halves each; an odd tensor's padding half too)
  const words = t.dtype === 'f16' ? Math.ceil(t.size / 2) : t.size;
  rt().dispatch(fillKernel, [t.buffer], FILL_PARAMS.pack({ n: words, bits: valueBits(value, t.dtype) }), grid1d(Math.ceil(words / 256)));
}
