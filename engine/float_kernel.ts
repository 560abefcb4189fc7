// Kernels specialised by a float tensor's element type. Where a file has both, the f16 kernel is
// a section of its own named `<section>_f16` (f16 storage, f32 arithmetic inside), so the f32
// sections and their WGSL stay exactly as they were. An f16 kernel starts with WGSL's
// `enable f16;`, which must precede every declaration, the file's shared preamble included:
// it is put in front here rather than in the file.
import { type ParamBlock, type Spec, kernel, shaderKernel } from './kernel.js';
import type { Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';
import type { FloatDType } from './tensor.js';

/** Section `section` of shaders/<file>.wgsl for f32 tensors, or `<section>_f16` for f16 ones. */
export function floatKernel(file: string, section: string, dtype: FloatDType, values: Spec, params: ParamBlock<any>): Kernel {
  if (dtype === 'f32') return shaderKernel(file, section, values, params);
  const f16Section = `${section}_f16`;
  return kernel(`${file}.${f16Section}`, values, (v) => `enable f16;\n${wgslKernel(file, f16Section, { ...(v as Record<string, string | number>), PARAMS: params.wgsl })}`);
}
