// Launches shaders/fill.wgsl: writes one value into every element of a tensor.
import { grid1d, rt, type Kernel } from './runtime.js';
import { wgsl } from './shaders.js';
import type { Tensor } from './tensor.js';

const fillKernel: Kernel = { name: 'fill', key: 'fill', code: () => wgsl('fill') };

/** The 32 bits that represent `value` in `dtype`. */
export function valueBits(value: number, dtype: 'f32' | 'i32' | 'u32'): number {
  const v = new DataView(new ArrayBuffer(4));
  if (dtype === 'f32') v.setFloat32(0, value, true);
  else if (dtype === 'i32') v.setInt32(0, value, true);
  else v.setUint32(0, value, true);
  return v.getUint32(0, true);
}

export function dispatchFill(t: Tensor, value: number): void {
  const params = new Uint32Array([t.size, valueBits(value, t.dtype)]);
  rt().dispatch(fillKernel, [t.buffer], params, grid1d(Math.ceil(t.size / 256)));
}
