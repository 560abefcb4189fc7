// Launches shaders/fill.wgsl: writes one value into every element of a tensor.
import { kernel, paramBlock } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { wgsl } from './shaders.js';
import type { Tensor } from './tensor.js';

/** n: elements; bits: the value's 32 bits. */
const FILL_PARAMS = paramBlock({ n: 'u32', bits: 'u32' });

const fillKernel = kernel('fill', {}, () => wgsl('fill', { PARAMS: FILL_PARAMS.wgsl }));

/** The 32 bits that represent `value` in `dtype`. */
export function valueBits(value: number, dtype: 'f32' | 'i32' | 'u32'): number {
  const v = new DataView(new ArrayBuffer(4));
  if (dtype === 'f32') v.setFloat32(0, value, true);
  else if (dtype === 'i32') v.setInt32(0, value, true);
  else v.setUint32(0, value, true);
  return v.getUint32(0, true);
}

export function dispatchFill(t: Tensor, value: number): void {
  rt().dispatch(fillKernel, [t.buffer], FILL_PARAMS.pack({ n: t.size, bits: valueBits(value, t.dtype) }), grid1d(Math.ceil(t.size / 256)));
}
