// conv2d and convTranspose2d: the raw passes (no autograd; for benchmarks and the backward
// rules) and the ops with autograd. Each raw pass plans (./plan.ts) with the device's
// capabilities and the flags in force, then launches the plan (./launch.ts).
import { record } from '../autograd.js';
import { reluGradFromOutput } from '../elementwise.js';
import { flags } from '../flags.js';
import { rt, uniformArrayVec4s } from '../runtime.js';
import { Tensor, empty } from '../tensor.js';
import {
  type Conv2dOptions, type ConvGeom, type ConvPass, type ConvTranspose2dOptions, conv2dGeom, convTranspose2dGeom, forwardConvPass, transposedPasses, wgradPass,
} from './geometry.js';
import { biasGrad, runConvPass, runWgrad } from './launch.js';
import { type ConvPassPlan, type ConvSchedule, type ConvStorage, type WgradPlan, planConvPass, planConvSchedule, planWgrad } from './plan.js';
import { tunedPlan } from '../autotune.js';
import { CONV_PASS_TUNING, CONV_WGRAD_TUNING } from '../candidates.js';

/** The schedule the conv kernels use now: flag convSchedule, else 'reg' on CPU devices. */
export function convSchedule(): ConvSchedule {
  return planConvSchedule(rt().caps, flags());
}

/**
 * The uniform array (vec4s) that `floats` values in a buffer of `bufferBytes` bind as in the
 * reg conv kernel, or 0 for storage; flag convUniformWeights (VQ_CONV_UNIFORM_WEIGHTS=0) turns it off.
 */
export function uniformWeightVec4s(floats: number, bufferBytes: number): number {
  return flags().convUniformWeights ? uniformArrayVec4s(floats, bufferBytes) : 0;
}

/**
 * The element type the conv kernels run on for activations `x` (f32 or f16; the weights, bias
 * and output gradient must match it, see launch.ts).
 */
function storageOf(x: Tensor): ConvStorage {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new Error(`conv: expected f32 or f16 activations, got ${x.describe()}`);
  return x.dtype;
}

/**
 * The plan of `pass`: with schedule `sched` when the caller forces one, else the tuned plan where
 * flag autotune asks for one. The tuner measures f32 operands, so f16 passes take the rule's plan.
 */
function passPlan(pass: ConvPass, weightBytes: number, sched: ConvSchedule | undefined, storage: ConvStorage): ConvPassPlan {
  const caps = rt().caps;
  const f = flags();
  const rule = () => planConvPass(pass, sched ?? planConvSchedule(caps, f), caps, f, weightBytes, storage);
  return sched || storage !== 'f32' ? rule() : tunedPlan(CONV_PASS_TUNING, { pass, weightBytes }, rule);
}

/** The plan of a weight gradient (as passPlan). */
function wgradPlan(g: ConvGeom, sched: ConvSchedule | undefined, storage: ConvStorage): WgradPlan {
  const caps = rt().caps;
  const f = flags();
  const pass = wgradPass(g);
  const rule = () => planWgrad(pass, sched ?? planConvSchedule(caps, f), caps, f, storage);
  return sched || storage !== 'f32' ? rule() : tunedPlan(CONV_WGRAD_TUNING, pass, rule);
}

/** Runs `passes` from x into a new tensor of `shape`, stored as x is. */
function runPasses(x: Tensor, w: Tensor, bias: Tensor | null, shape: number[], passes: ConvPass[], relu: boolean, sched: ConvSchedule | undefined): Tensor {
  const storage = storageOf(x);
  const y = empty(shape, storage);
  for (const pass of passes) runConvPass(x, w, bias, y, passPlan(pass, w.buffer.size, sched, storage), relu);
  return y;
}

/** conv2d forward: y [B, CO, OH, OW] (+ bias, relu), stored as x is. */
export function conv2dForward(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, sched?: ConvSchedule): Tensor {
  return runPasses(x, w, bias, [g.B, g.CO, g.OH, g.OW], [forwardConvPass(g)], relu, sched);
}

/** conv2d input gradient: dx [B, CI, IH, IW] from dy [B, CO, OH, OW], stored as dy is. */
export function conv2dInputGrad(dy: Tensor, w: Tensor, g: ConvGeom, sched?: ConvSchedule): Tensor {
  return runPasses(dy, w, null, [g.B, g.CI, g.IH, g.IW], transposedPasses(g), false, sched);
}

/** conv2d weight gradient dw [CO, CI, KH, KW] (f32) from dy and the input x. */
export function conv2dWeightGrad(dy: Tensor, x: Tensor, g: ConvGeom, sched?: ConvSchedule): Tensor {
  return runWgrad(dy, x, wgradPlan(g, sched, storageOf(x)));
}

/** Bias gradient of either op: per-channel sum of the output gradient. */
export function convBiasGrad(dy: Tensor): Tensor {
  return biasGrad(dy);
}

/** convTranspose2d forward: y [B, CI(conv), IH(conv), IW(conv)] from x [B, CO(conv), OH, OW]. */
export function convTranspose2dForward(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, sched?: ConvSchedule): Tensor {
  return runPasses(x, w, bias, [g.B, g.CI, g.IH, g.IW], transposedPasses(g), relu, sched);
}

/** convTranspose2d input gradient: dx [B, CO(conv), OH, OW] from dy [B, CI(conv), IH, IW]. */
export function convTranspose2dInputGrad(dy: Tensor, w: Tensor, g: ConvGeom, sched?: ConvSchedule): Tensor {
  return runPasses(dy, w, null, [g.B, g.CO, g.OH, g.OW], [forwardConvPass(g)], false, sched);
}

/** convTranspose2d weight gradient dw [in, out, KH, KW] from its input x and output gradient dy. */
export function convTranspose2dWeightGrad(dy: Tensor, x: Tensor, g: ConvGeom, sched?: ConvSchedule): Tensor {
  return runWgrad(x, dy, wgradPlan(g, sched, storageOf(x)));
}

// ---------------------------------------------------------------------------------------------
// Ops with autograd

/**
 * 2-D convolution, PyTorch's `F.conv2d(x, w, bias, stride, padding)` (+ optional fused ReLU).
 * x [B, Cin, H, W], w [Cout, Cin, kh, kw], bias [Cout] or null, all f32 or all f16: the output
 * and the input gradient are stored as x is, the weight and bias gradients are f32 (the kernels
 * sum in f32; an f16 weight's f32 gradient reaches its f32 master through the cast's backward).
 */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const g = conv2dGeom(x, w, bias, opts);
  const relu = opts.activation === 'relu';
  const y = conv2dForward(x, w, bias ?? null, g, relu);
  const inputs = bias ? [x, w, bias] : [x, w];
  const need = inputs.map((t) => t.requiresGrad);
  return record(y, 'conv2d', inputs, relu ? [x, w, y] : [x, w], (grad, saved) => {
    const [sx, sw, sy] = saved;
    const gy = relu ? reluGradFromOutput(grad, sy) : grad;
    const dx = need[0] ? conv2dInputGrad(gy, sw, g) : null;
    const dw = need[1] ? conv2dWeightGrad(gy, sx, g) : null;
    const db = bias && need[2] ? biasGrad(gy) : null;
    if (gy !== grad) gy.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

/**
 * Transposed 2-D convolution, PyTorch's `F.conv_transpose2d(x, w, bias, stride, padding,
 * output_padding)` (+ optional fused ReLU). x [B, Cin, H, W], w [Cin, Cout, kh, kw]; element
 * types as conv2d's.
 */
export function convTranspose2d(x: Tensor, w: Tensor, bias?: Tensor | null, opts: ConvTranspose2dOptions = {}): Tensor {
  const g = convTranspose2dGeom(x, w, bias, opts);
  const relu = opts.activation === 'relu';
  const y = convTranspose2dForward(x, w, bias ?? null, g, relu);
  const inputs = bias ? [x, w, bias] : [x, w];
  const need = inputs.map((t) => t.requiresGrad);
  return record(y, 'convTranspose2d', inputs, relu ? [x, w, y] : [x, w], (grad, saved) => {
    const [sx, sw, sy] = saved;
    const gy = relu ? reluGradFromOutput(grad, sy) : grad;
    const dx = need[0] ? convTranspose2dInputGrad(gy, sw, g) : null;
    const dw = need[1] ? convTranspose2dWeightGrad(gy, sx, g) : null;
    const db = bias && need[2] ? biasGrad(gy) : null;
    if (gy !== grad) gy.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  });
}
