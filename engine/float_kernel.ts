// Kernels specialised by a float tensor's element type: either a section of its own named
// `<section>_f16` (f16 storage, f32 arithmetic inside; reduce.wgsl), or one section templated on
// its storage type (elementwise.wgsl, f16Kernel). An f16 kernel starts with WGSL's
// `enable f16;`, which must precede every declaration, the file's shared preamble included:
// it is put in front here rather than in the file.
import { type ParamBlock, type Spec, kernel, shaderKernel } from './kernel.js';
import type { Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';
import type { FloatDType } from './tensor.js';

/** Section `section` of shaders/<file>.wgsl for f32 tensors, or `<section>_f16` for f16 ones. */
export function floatKernel(file: string, section: string, dtype: FloatDType, values: Spec, params: ParamBlock<any>): Kernel {
  if (dtype === 'f32') return shaderKernel(file, section, values, params);
  return f16Kernel(file, `${section}_f16`, values, params);
}

/**
 * Section `section` of shaders/<file>.wgsl with f16 enabled: for a section templated on its
 * storage type (elementwise.wgsl's S), instantiated with f16 storage.
 */
export function f16Kernel(file: string, section: string, values: Spec, params: ParamBlock<any>): Kernel {
  return kernel(`${file}.${section}${section.endsWith('_f16') ? '' : '.f16'}`, values, (v) => `enable f16;\n${wgslKernel(file, section, { ...(v as Record<string, string | number>), PARAMS: params.wgsl })}`);
}
