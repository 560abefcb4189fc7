// conv2d and convTranspose2d: the raw passes (no autograd; for benchmarks and the backward
// rules) and the ops with autograd. Each raw pass plans (./plan.ts) with the device's
// capabilities and the flags in force, then launches the plan (./launch.ts).
import { record } from '../autograd.js';
import { reluGradFromOutput } from '../elementwise.js';
import { flags } from '../flags.js';
import { rt, uniformArrayVec4s } from '../runtime.js';
import { Tensor, empty } from '../tensor.js';
import {
  type Conv2dOptions, type ConvGeom, type ConvTranspose2dOptions, conv2dGeom, convTranspose2dGeom, forwardConvPass, transposedPasses, wgradPass,
} from './geometry.js';
import { biasGrad, runConvPass, runWgrad } from './launch.js';
import { type ConvSchedule, planConvPass, planConvSchedule, planWgrad } from './plan.js';

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

function runPasses(x: Tensor, w: Tensor, bias: Tensor | null, y: Tensor, passes: ReturnType<typeof transposedPasses>, relu: boolean, sched: ConvSchedule): void {
  const caps = rt().caps;
  const f = flags();
  for (const pass of passes) runConvPass(x, w, bias, y, planConvPass(pass, sched, caps, f, w.buffer.size), relu);
}

/** conv2d forward: y [B, CO, OH, OW] (+ bias, relu). */
export function conv2dForward(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, sched = convSchedule()): Tensor {
  const y = empty([g.B, g.CO, g.OH, g.OW]);
  runPasses(x, w, bias, y, [forwardConvPass(g)], relu, sched);
  return y;
}

/** conv2d input gradient: dx [B, CI, IH, IW] from dy [B, CO, OH, OW]. */
export function conv2dInputGrad(dy: Tensor, w: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  const dx = empty([g.B, g.CI, g.IH, g.IW]);
  runPasses(dy, w, null, dx, transposedPasses(g), false, sched);
  return dx;
}

/** conv2d weight gradient dw [CO, CI, KH, KW] from dy and the input x. */
export function conv2dWeightGrad(dy: Tensor, x: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  return runWgrad(dy, x, planWgrad(wgradPass(g), sched, rt().caps, flags()));
}

/** Bias gradient of either op: per-channel sum of the output gradient. */
export function convBiasGrad(dy: Tensor): Tensor {
  return biasGrad(dy);
}

/** convTranspose2d forward: y [B, CI(conv), IH(conv), IW(conv)] from x [B, CO(conv), OH, OW]. */
export function convTranspose2dForward(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, sched = convSchedule()): Tensor {
  const y = empty([g.B, g.CI, g.IH, g.IW]);
  runPasses(x, w, bias, y, transposedPasses(g), relu, sched);
  return y;
}

/** convTranspose2d input gradient: dx [B, CO(conv), OH, OW] from dy [B, CI(conv), IH, IW]. */
export function convTranspose2dInputGrad(dy: Tensor, w: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  const dx = empty([g.B, g.CO, g.OH, g.OW]);
  runPasses(dy, w, null, dx, [forwardConvPass(g)], false, sched);
  return dx;
}

/** convTranspose2d weight gradient dw [in, out, KH, KW] from its input x and output gradient dy. */
export function convTranspose2dWeightGrad(dy: Tensor, x: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  return runWgrad(x, dy, planWgrad(wgradPass(g), sched, rt().caps, flags()));
}

// ---------------------------------------------------------------------------------------------
// Ops with autograd

/**
 * 2-D convolution, PyTorch's `F.conv2d(x, w, bias, stride, padding)` (+ optional fused ReLU).
 * x [B, Cin, H, W], w [Cout, Cin, kh, kw], bias [Cout] or null.
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
 * output_padding)` (+ optional fused ReLU). x [B, Cin, H, W], w [Cin, Cout, kh, kw].
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
