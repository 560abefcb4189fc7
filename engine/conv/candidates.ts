// Candidates for the autotuner (engine/autotune.ts): the plans a conv pass or weight gradient
// can run, the rule-based plan (./plan.ts) first. A flag set away from its default is a choice
// already made: only flags still at their defaults are varied. Every candidate computes the same
// sums, in another order at most. Pure, as the plans.
import type { ConvPass, WgradPass } from './geometry.js';
import {
  type ConvCaps, type ConvFlags, type ConvPassPlan, type ConvStorage, type WgradPlan, describeConvPassPlan, describeWgradPlan, planConvPass, planConvSchedule, planWgrad,
} from './plan.js';

/** The plans in order, without repeats of a description (the autotuner's ids). */
export function distinctBy<P>(plans: P[], describe: (p: P) => string): P[] {
  const seen = new Set<string>();
  return plans.filter((p) => {
    const d = describe(p);
    if (seen.has(d)) return false;
    seen.add(d);
    return true;
  });
}

/** A reg pass plan with PJ positions per lane instead (its grid follows). */
function withPositionsPerLane(p: ConvPassPlan & { kind: 'reg' }, PJ: number): ConvPassPlan {
  const NG = Math.ceil(p.pass.QW / PJ);
  return { ...p, v: { ...p.v, PJ }, NG, NPOS: p.pass.B * p.pass.QH * NG };
}

/**
 * The candidate plans of a conv-kernel pass: the rule-based plan; the other schedule (flag
 * convSchedule auto); storage instead of uniform weights (convUniformWeights); repacked 1x1
 * weights (convRepack1x1); and the rule-based reg plan with 4, 8 or 16 positions per lane
 * (those a row of QW positions fills at least half of).
 */
export function convPassCandidates(pass: ConvPass, caps: ConvCaps, f: ConvFlags, weightBytes?: number, storage: ConvStorage = 'f32'): ConvPassPlan[] {
  const plan = (g: ConvFlags) => planConvPass(pass, planConvSchedule(caps, g), caps, g, weightBytes, storage);
  const rule = plan(f);
  const out = [rule];
  if (f.convSchedule === 'auto') out.push(plan({ ...f, convSchedule: 'reg' }), plan({ ...f, convSchedule: 'smem' }));
  if (f.convUniformWeights) out.push(plan({ ...f, convUniformWeights: false }));
  if (!f.convRepack1x1) out.push(plan({ ...f, convRepack1x1: true }));
  const reg = out.find((p): p is ConvPassPlan & { kind: 'reg' } => p.kind === 'reg');
  if (reg && !reg.noTaps) {
    for (const PJ of [4, 8, 16]) if (PJ !== reg.v.PJ && 2 * pass.QW >= PJ) out.push(withPositionsPerLane(reg, PJ));
  }
  return distinctBy(out, describeConvPassPlan);
}

/**
 * The candidate plans of a weight gradient: the rule-based plan; the other schedule (flag
 * convSchedule auto); the general kernel instead of the row-walking one (convWgradRows); on
 * CPU devices no texture operands and every texture operand that fits (convWgradTextures auto).
 */
export function wgradCandidates(pass: WgradPass, caps: ConvCaps, f: ConvFlags, storage: ConvStorage = 'f32'): WgradPlan[] {
  const plan = (g: ConvFlags) => planWgrad(pass, planConvSchedule(caps, g), caps, g, storage);
  const out = [plan(f)];
  if (f.convSchedule === 'auto') out.push(plan({ ...f, convSchedule: 'reg' }), plan({ ...f, convSchedule: 'smem' }));
  if (f.convWgradRows) out.push(plan({ ...f, convWgradRows: false }));
  if (caps.isCpu && f.convWgradTextures === 'auto') out.push(plan({ ...f, convWgradTextures: '0' }), plan({ ...f, convWgradTextures: 'AX' }));
  return distinctBy(out, describeWgradPlan);
}
