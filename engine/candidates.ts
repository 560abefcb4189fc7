// What the autotuner (./autotune.ts) chooses from: for each tunable operation, the candidate
// plans of a shape (pure: shape, capabilities, flags -> plans, the rule-based plan first) and
// the Tunable the operation's call site passes to tunedPlan (its key fields, and random inputs
// of the shape to time a candidate on). The conv candidates are in ./conv/candidates.ts. A flag set
// away from its default is a choice already made: only flags at their defaults are varied.
import { flags } from './flags.js';
import { type GemmLaunch, type MatmulCaps, type MatmulFlags, type MatmulPlan, describeMatmulPlan, planMatmul, runGemm } from './matmul.js';
import { Rng } from './random.js';
import { type Tensor, share, tensor } from './tensor.js';
import type { Tunable } from './autotune.js';
import { type NearestPlan, type VqCaps, type VqFlags, describeNearestPlan, nearestCode, planNearest } from './vq.js';
import type { ConvPass, WgradPass } from './conv/geometry.js';
import { runConvPass, runWgrad } from './conv/launch.js';
import { type ConvPassPlan, type WgradPlan, describeConvPassPlan, describeWgradPlan } from './conv/plan.js';
import { convPassCandidates, distinctBy, wgradCandidates } from './conv/candidates.js';

export { convPassCandidates, wgradCandidates } from './conv/candidates.js';

/** `plan()`, or nothing where the variant cannot run this shape (planMatmul's grid limit). */
function attempt<P>(plan: () => P): P[] {
  try {
    return [plan()];
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Matmul

/** A GEMM's shape as the autotuner keys it. */
export interface GemmShape {
  M: number;
  N: number;
  K: number;
  zOut: number;
  nRed: number;
  aCount: number;
  bCount: number;
  transA: boolean;
  transB: boolean;
}

/** reg tiles (ROWSxCOLS) tried besides the rule's: fewer rows or columns per lane. */
const MATMUL_REG_TILES = ['32x8', '16x8', '32x4', '16x4', '8x8'];

/**
 * The candidate plans of a GEMM: the rule-based plan; the other schedule (flag matmulSchedule
 * auto); with a reg rule and no matmulTile set, the reg tiles of MATMUL_REG_TILES (8 rows only
 * without subgroup sharing, whose rows each cost a load).
 */
export function matmulCandidates(s: GemmShape, caps: MatmulCaps, f: MatmulFlags): MatmulPlan[] {
  const plan = (g: MatmulFlags) => planMatmul({ M: s.M, N: s.N, K: s.K, zOut: s.zOut, transB: s.transB }, caps, g);
  const out = [plan(f)];
  if (f.matmulSchedule === 'auto') out.push(...attempt(() => plan({ ...f, matmulSchedule: 'reg' })), ...attempt(() => plan({ ...f, matmulSchedule: 'smem' })));
  if (out[0].tile.schedule === 'reg' && f.matmulTile === '') {
    const tiles = out[0].tile.shareA ? MATMUL_REG_TILES : MATMUL_REG_TILES.filter((t) => t.startsWith('8x'));
    for (const matmulTile of tiles) out.push(...attempt(() => plan({ ...f, matmulTile })));
  }
  return distinctBy(out, describeMatmulPlan);
}

// ---------------------------------------------------------------------------------------------
// Nearest-code search

export interface NearestShape {
  n: number;
  k: number;
  d: number;
  /** The codebook buffer's size (decides whether it binds as a uniform array). */
  codebookBytes: number;
}

/**
 * The candidate plans of a nearest-code search: the rule-based plan; the other schedule (flag
 * vqSchedule auto); the reg kernel without subgroup sharing (vqSubgroups, where it shares); the
 * rule's reg plan reading the codebook from storage instead of a uniform array.
 */
export function nearestCandidates(s: NearestShape, caps: VqCaps, f: VqFlags): NearestPlan[] {
  const plan = (o: { schedule?: 'reg' | 'smem'; subgroups?: boolean }) => planNearest(s, caps, f, o, s.codebookBytes);
  const rule = plan({});
  const out = [rule];
  if (f.vqSchedule === 'auto') out.push(plan({ schedule: rule.kind === 'reg' ? 'smem' : 'reg' }));
  const reg = out.find((p) => p.kind === 'reg');
  if (reg?.kind === 'reg' && reg.sg && f.vqSubgroups) out.push(plan({ schedule: 'reg', subgroups: false }));
  if (reg?.kind === 'reg' && reg.uniformCodes) out.push({ ...reg, uniformCodes: 0 });
  return distinctBy(out, describeNearestPlan);
}

// ---------------------------------------------------------------------------------------------
// The Tunables

const random = (n: number, seed: number) => tensor(new Rng(seed).uniformArray(Math.max(1, n), -1, 1));
const disposeAll = (ts: Tensor[]) => () => ts.forEach((t) => t.dispose());

/** A conv-kernel pass and the size of its weight buffer. */
export interface ConvPassShape {
  pass: ConvPass;
  weightBytes: number;
}

const fields = (o: object) => Object.entries(o).map(([k, v]) => `${k}${typeof v === 'boolean' ? +v : v}`).join(' ');

export const CONV_PASS_TUNING: Tunable<ConvPassShape, ConvPassPlan> = {
  op: 'conv.pass',
  shape: (s) => `${fields(s.pass)} wbytes${s.weightBytes}`,
  candidates: (s, caps) => convPassCandidates(s.pass, caps, flags(), s.weightBytes),
  id: describeConvPassPlan,
  bench(s) {
    const p = s.pass;
    const x = random(p.B * p.KIN * p.IH * p.IW, 1);
    const w = random(Math.max(p.ROWS * p.KIN * p.KH * p.KW, s.weightBytes / 4), 2);
    const y = random(p.B * p.ROWS * p.OH * p.OW, 3);
    return { run: (plan) => runConvPass(x, w, null, y, plan, false), dispose: disposeAll([x, w, y]) };
  },
};

export const CONV_WGRAD_TUNING: Tunable<WgradPass, WgradPlan> = {
  op: 'conv.wgrad',
  shape: (p) => fields(p),
  candidates: (p, caps) => wgradCandidates(p, caps, flags()),
  id: describeWgradPlan,
  bench(p) {
    const a = random(p.B * p.ROWS * p.QH * p.QW, 1);
    const x = random(p.B * p.KIN * p.IH * p.IW, 2);
    return { run: (plan) => runWgrad(a, x, plan).dispose(), dispose: disposeAll([a, x]) };
  },
};

export const MATMUL_TUNING: Tunable<GemmShape, MatmulPlan> = {
  op: 'matmul',
  shape: fields,
  candidates: (s, caps) => matmulCandidates(s, caps, flags()),
  id: describeMatmulPlan,
  bench(s) {
    const a = random(s.aCount * s.M * s.K, 1);
    const b = random(s.bCount * s.K * s.N, 2);
    const out = random(s.zOut * s.M * s.N, 3);
    const g: GemmLaunch = { a, b, out, M: s.M, N: s.N, K: s.K, transA: s.transA, transB: s.transB, zOut: s.zOut, nRed: s.nRed, aCount: s.aCount, bCount: s.bCount };
    return { run: (plan) => runGemm(g, plan), dispose: disposeAll([a, b, out]) };
  },
};

export const NEAREST_TUNING: Tunable<NearestShape, NearestPlan> = {
  op: 'nearest',
  shape: (s) => fields(s),
  candidates: (s, caps) => nearestCandidates(s, caps, flags()),
  id: describeNearestPlan,
  bench(s) {
    const zData = random(s.n * s.d, 1);
    const eData = random(Math.max(s.k * s.d, s.codebookBytes / 4), 2);
    const z = share(zData, [s.n, s.d]);
    const e = share(eData, [s.k, s.d]);
    return { run: (plan) => nearestCode(z, e, { plan }).indices.dispose(), dispose: disposeAll([zData, eData, z, e]) };
  },
};

/** The matmul shape of a launch (its key fields). */
export function matmulShapeOf(g: GemmLaunch): GemmShape {
  return {
    M: g.M, N: g.N, K: g.K, zOut: g.zOut ?? 1, nRed: g.nRed ?? 1, aCount: g.aCount ?? 1, bCount: g.bCount ?? 1,
    transA: !!g.transA, transB: !!g.transB,
  };
}

