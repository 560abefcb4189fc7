// Kernels specialised by a float tensor's element type: one section templated on its storage
// type (f16 storage, f32 arithmetic inside), whose f16 instance starts with WGSL's
// `enable f16;`. That must precede every declaration, the file's shared preamble included: it
// is put in front here rather than in the file.
import { type ParamBlock, type Spec, kernel, shaderKernel } from './kernel.js';
import type { Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';
import type { FloatDType } from './tensor.js';

/** Section `section` of shaders/<file>.wgsl, for f32 tensors or (with f16 enabled) f16 ones. */
export function floatKernel(file: string, section: string, dtype: FloatDType, values: Spec, params: ParamBlock<any>): Kernel {
  if (dtype === 'f32') return shaderKernel(file, section, values, params);
  return kernel(`${file}.${section}.f16`, values, (v) => `enable f16;\n${wgslKernel(file, section, { ...(v as Record<string, string | number>), PARAMS: params.wgsl })}`);
}
