// conv2d and convTranspose2d with autograd, PyTorch layouts at the API (activations NCHW, conv
// weight [out, in, kh, kw], transposed-conv weight [in, out, kh, kw]) and NCHW inside too.
//
// Every pass is an implicit GEMM over shaders/conv.wgsl (see its header):
//   conv forward, convT input gradient  -> "conv" kernel, DIR = +1, one dispatch
//   conv input gradient, convT forward  -> "conv" kernel, DIR = -1, one dispatch per output phase
//                                          of the stride (only taps that reach that phase)
//   both weight gradients               -> "wgrad" kernel, split over position chunks, then wsum
//   both bias gradients                 -> bias_grad (a per-channel sum)
//
// The folder, by role:
//   geometry.ts   argument checks; the GEMM passes of each op (pure)
//   plan.ts       (pass, device capabilities, flags) -> plan: kernel variant and tiles (pure)
//   candidates.ts every plan a pass could run, for the autotuner (engine/autotune.ts; pure)
//   params.ts     the kernels' uniform parameter blocks, by name
//   emit_*.ts     WGSL of the unrolled reg kernels
//   kernels.ts    every conv kernel as (generator, specialisation)
//   launch.ts     plan -> dispatches
//   ops.ts        raw passes and the autograd ops
//
// Schedules: 'reg' on CPU Vulkan devices (subgroup broadcast, no workgroup memory; see the
// shader header), 'smem' on GPUs, where passes with at most 8 output channels still use 'reg'.
// VQ_CONV_SCHEDULE=reg|smem forces one everywhere.
//
// Element types: activations, weights and output gradients are all f32 or all f16 (the plan's
// `storage`, from the input's dtype). f16 kernels convert each load to f32, accumulate in f32
// and store f16 outputs and input gradients; the pack kernel turns f16 weights into the f32
// packed weights; weight and bias gradients are f32.
export type { ConvPair, Conv2dOptions, ConvTranspose2dOptions, ConvGeom, ConvPass, WgradPass } from './geometry.js';
export { conv2dGeom, convTranspose2dGeom, conv2dGeometry, convTranspose2dGeometry, convFlops } from './geometry.js';
export type { ConvSchedule, ConvStorage, ConvCaps, ConvFlags, ConvPassPlan, WgradPlan, ConvOpPlan, ConvOpPass, RegConv, RegWgrad, RegWgradRows } from './plan.js';
export { planConv, planConvPass, planWgrad, planConvSchedule, describeConvPlan, describeConvPassPlan, describeWgradPlan } from './plan.js';
export {
  convSchedule, uniformWeightVec4s, conv2dForward, conv2dInputGrad, conv2dWeightGrad, convBiasGrad,
  convTranspose2dForward, convTranspose2dInputGrad, convTranspose2dWeightGrad, conv2d, convTranspose2d,
} from './ops.js';
