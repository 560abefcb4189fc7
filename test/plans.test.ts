// Plans as data: the kernel variant and tiles of every seed layer's passes (bench/conv_cases.ts,
// batch 32 and 256), and of the VQ codebook search as a matmul and as the fused nearest-code
// kernel (the seed's batches 32 and 256 and the quick preset's 8), for a lavapipe-like and an
// H100-like device, with no GPU; and the broadcast kernels' outputs per invocation and the
// vec4-texture size rule, for the three capability sets. A change here is a change of which kernel runs where: update
// the table on purpose, and say why in the commit.
import t from 'tap';
import { SEED_LAYERS } from '../bench/conv_cases.js';
import * as C from '../engine/conv.js';
import { FLAG_SPECS, type Flags } from '../engine/flags.js';
import { describeMatmulPlan, planMatmul } from '../engine/matmul.js';
import { broadcastPerInvocation } from '../engine/reduce.js';
import { VEC4_TEXTURE_WIDTH } from '../engine/runtime.js';
import { vec4TextureFits } from '../engine/texture_plan.js';
import { describeNearestPlan, planNearest } from '../engine/vq.js';
import { H100_CAPS, LAVAPIPE_CAPS, SWIFTSHADER_CAPS } from './plans/caps.js';
import { matmulCandidates, nearestCandidates } from '../engine/candidates.js';
import { convPassCandidates, wgradCandidates } from '../engine/conv/candidates.js';
import { type ConvPass, type WgradPass, forwardConvPass, transposedPasses, wgradPass } from '../engine/conv/geometry.js';
import { bucketSize } from '../engine/pool.js';

const DEFAULTS = Object.fromEntries(Object.entries(FLAG_SPECS).map(([k, v]) => [k, v.default])) as Flags;

/** Each seed layer's plan per bench case name (conv.enc1.fwd.b32 ...). */
function seedPlans(caps: typeof LAVAPIPE_CAPS, f: Flags = DEFAULTS): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of SEED_LAYERS) {
    for (const B of [32, 256]) {
      for (const op of ['fwd', 'dgrad', 'wgrad'] as const) {
        const xs = [B, l.CI, l.H, l.H];
        const ws = l.transposed ? [l.CI, l.CO, l.K, l.K] : [l.CO, l.CI, l.K, l.K];
        const o = { stride: l.stride, padding: l.pad };
        const g = l.transposed ? C.convTranspose2dGeometry(xs, ws, o) : C.conv2dGeometry(xs, ws, o);
        out[`${l.transposed ? 'convT' : 'conv'}.${l.name}.${op}.b${B}`] = C.describeConvPlan(C.planConv(op, g, l.transposed, caps, f));
      }
    }
  }
  return out;
}

const EXPECTED: Record<'lavapipe' | 'h100', Record<string, string>> = {
  lavapipe: {
    'conv.enc1.fwd.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack u1024',
    'conv.enc1.dgrad.b32': '2x reg R4 PJ16 tap D-1 vx0 w:pack u512 + 2x reg R4 PJ16 tap D-1 vx1 w:pack u512',
    'conv.enc1.wgrad.b32': 'wreg R16 CPL2 T4 texX S8',
    'conv.enc1.fwd.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack u1024',
    'conv.enc1.dgrad.b256': '2x reg R4 PJ16 tap D-1 vx0 w:pack u512 + 2x reg R4 PJ16 tap D-1 vx1 w:pack u512',
    'conv.enc1.wgrad.b256': 'wreg R16 CPL2 T4 texX S64',
    'conv.enc2.fwd.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.enc2.dgrad.b32': '2x reg R16 PJ16 tap D-1 vx0 w:pack + 2x reg R16 PJ16 tap D-1 vx1 w:pack',
    'conv.enc2.wgrad.b32': 'wreg R16 CPL2 T4 texAX S2',
    'conv.enc2.fwd.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.enc2.dgrad.b256': '2x reg R16 PJ16 tap D-1 vx0 w:pack + 2x reg R16 PJ16 tap D-1 vx1 w:pack',
    'conv.enc2.wgrad.b256': 'wreg R16 CPL2 T4 texAX S16',
    'conv.enc3.fwd.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.enc3.dgrad.b32': 'reg R16 PJ16 tap D-1 vx1 vy w:pack',
    'conv.enc3.wgrad.b32': 'wrows R16 TY3 T3 texA S2',
    'conv.enc3.fwd.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.enc3.dgrad.b256': 'reg R16 PJ16 tap D-1 vx1 vy w:pack',
    'conv.enc3.wgrad.b256': 'wrows R16 TY3 T3 texA S16',
    'conv.res3x3.fwd.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.res3x3.dgrad.b32': 'reg R16 PJ16 tap D-1 vx1 vy w:pack',
    'conv.res3x3.wgrad.b32': 'wrows R16 TY3 T3 texA S2',
    'conv.res3x3.fwd.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.res3x3.dgrad.b256': 'reg R16 PJ16 tap D-1 vx1 vy w:pack',
    'conv.res3x3.wgrad.b256': 'wrows R16 TY3 T3 texA S16',
    'conv.res1x1.fwd.b32': 'reg R32 PJ4 chan D1 vx0 vy w:as-is u1024',
    'conv.res1x1.dgrad.b32': 'reg R32 PJ4 chan D1 vx0 vy w:as-is4 u1024',
    'conv.res1x1.wgrad.b32': 'wreg R32 CPL4 T1 texX S4',
    'conv.res1x1.fwd.b256': 'reg R32 PJ4 chan D1 vx0 vy w:as-is u1024',
    'conv.res1x1.dgrad.b256': 'reg R32 PJ4 chan D1 vx0 vy w:as-is4 u1024',
    'conv.res1x1.wgrad.b256': 'wreg R32 CPL4 T1 texX S16',
    'conv.prevq.fwd.b32': 'reg R32 PJ4 chan D1 vx0 vy w:as-is u2048',
    'conv.prevq.dgrad.b32': 'reg R32 PJ4 chan D1 vx0 vy w:as-is4 u2048',
    'conv.prevq.wgrad.b32': 'wreg R32 CPL4 T1 texA S2',
    'conv.prevq.fwd.b256': 'reg R32 PJ4 chan D1 vx0 vy w:as-is u2048',
    'conv.prevq.dgrad.b256': 'reg R32 PJ4 chan D1 vx0 vy w:as-is4 u2048',
    'conv.prevq.wgrad.b256': 'wreg R32 CPL4 T1 texA S16',
    'conv.dec1.fwd.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.dec1.dgrad.b32': 'reg R16 PJ16 tap D-1 vx1 vy w:pack',
    'conv.dec1.wgrad.b32': 'wrows R16 TY3 T3 texA S2',
    'conv.dec1.fwd.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'conv.dec1.dgrad.b256': 'reg R16 PJ16 tap D-1 vx1 vy w:pack',
    'conv.dec1.wgrad.b256': 'wrows R16 TY3 T3 texA S16',
    'convT.decT1.fwd.b32': '2x reg R16 PJ16 tap D-1 vx0 w:pack + 2x reg R16 PJ16 tap D-1 vx1 w:pack',
    'convT.decT1.dgrad.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'convT.decT1.wgrad.b32': 'wreg R16 CPL2 T4 texAX S2',
    'convT.decT1.fwd.b256': '2x reg R16 PJ16 tap D-1 vx0 w:pack + 2x reg R16 PJ16 tap D-1 vx1 w:pack',
    'convT.decT1.dgrad.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack',
    'convT.decT1.wgrad.b256': 'wreg R16 CPL2 T4 texAX S16',
    'convT.decT2.fwd.b32': '2x reg R4 PJ16 tap D-1 vx0 w:pack u512 + 2x reg R4 PJ16 tap D-1 vx1 w:pack u512',
    'convT.decT2.dgrad.b32': 'reg R16 PJ16 tap D1 vx3 vy w:pack u1024',
    'convT.decT2.wgrad.b32': 'wreg R16 CPL2 T4 texX S8',
    'convT.decT2.fwd.b256': '2x reg R4 PJ16 tap D-1 vx0 w:pack u512 + 2x reg R4 PJ16 tap D-1 vx1 w:pack u512',
    'convT.decT2.dgrad.b256': 'reg R16 PJ16 tap D1 vx3 vy w:pack u1024',
    'convT.decT2.wgrad.b256': 'wreg R16 CPL2 T4 texX S64',
  },
  h100: {
    'conv.enc1.fwd.b32': 'smem D1',
    'conv.enc1.dgrad.b32': '2x reg R4 PJ8 tap D-1 vx0 w:pack + 2x reg R4 PJ8 tap D-1 vx1 w:pack',
    'conv.enc1.wgrad.b32': 'wsmem S128',
    'conv.enc1.fwd.b256': 'smem D1',
    'conv.enc1.dgrad.b256': '2x reg R4 PJ8 tap D-1 vx0 w:pack + 2x reg R4 PJ8 tap D-1 vx1 w:pack',
    'conv.enc1.wgrad.b256': 'wsmem S256',
    'conv.enc2.fwd.b32': 'smem D1',
    'conv.enc2.dgrad.b32': '4x smem D-1',
    'conv.enc2.wgrad.b32': 'wsmem S8',
    'conv.enc2.fwd.b256': 'smem D1',
    'conv.enc2.dgrad.b256': '4x smem D-1',
    'conv.enc2.wgrad.b256': 'wsmem S8',
    'conv.enc3.fwd.b32': 'smem D1',
    'conv.enc3.dgrad.b32': 'smem D-1',
    'conv.enc3.wgrad.b32': 'wsmem S8',
    'conv.enc3.fwd.b256': 'smem D1',
    'conv.enc3.dgrad.b256': 'smem D-1',
    'conv.enc3.wgrad.b256': 'wsmem S8',
    'conv.res3x3.fwd.b32': 'smem D1',
    'conv.res3x3.dgrad.b32': 'smem D-1',
    'conv.res3x3.wgrad.b32': 'wsmem S15',
    'conv.res3x3.fwd.b256': 'smem D1',
    'conv.res3x3.dgrad.b256': 'smem D-1',
    'conv.res3x3.wgrad.b256': 'wsmem S15',
    'conv.res1x1.fwd.b32': 'smem D1',
    'conv.res1x1.dgrad.b32': 'smem D1',
    'conv.res1x1.wgrad.b32': 'wsmem S32',
    'conv.res1x1.fwd.b256': 'smem D1',
    'conv.res1x1.dgrad.b256': 'smem D1',
    'conv.res1x1.wgrad.b256': 'wsmem S128',
    'conv.prevq.fwd.b32': 'smem D1',
    'conv.prevq.dgrad.b32': 'smem D1',
    'conv.prevq.wgrad.b32': 'wsmem S32',
    'conv.prevq.fwd.b256': 'smem D1',
    'conv.prevq.dgrad.b256': 'smem D1',
    'conv.prevq.wgrad.b256': 'wsmem S128',
    'conv.dec1.fwd.b32': 'smem D1',
    'conv.dec1.dgrad.b32': 'smem D-1',
    'conv.dec1.wgrad.b32': 'wsmem S15',
    'conv.dec1.fwd.b256': 'smem D1',
    'conv.dec1.dgrad.b256': 'smem D-1',
    'conv.dec1.wgrad.b256': 'wsmem S15',
    'convT.decT1.fwd.b32': '4x smem D-1',
    'convT.decT1.dgrad.b32': 'smem D1',
    'convT.decT1.wgrad.b32': 'wsmem S8',
    'convT.decT1.fwd.b256': '4x smem D-1',
    'convT.decT1.dgrad.b256': 'smem D1',
    'convT.decT1.wgrad.b256': 'wsmem S8',
    'convT.decT2.fwd.b32': '2x reg R4 PJ8 tap D-1 vx0 w:pack + 2x reg R4 PJ8 tap D-1 vx1 w:pack',
    'convT.decT2.dgrad.b32': 'smem D1',
    'convT.decT2.wgrad.b32': 'wsmem S128',
    'convT.decT2.fwd.b256': '2x reg R4 PJ8 tap D-1 vx0 w:pack + 2x reg R4 PJ8 tap D-1 vx1 w:pack',
    'convT.decT2.dgrad.b256': 'smem D1',
    'convT.decT2.wgrad.b256': 'wsmem S256',
  },
};

t.test('seed layer plans, lavapipe-like device', async (t) => {
  t.same(seedPlans(LAVAPIPE_CAPS), EXPECTED.lavapipe);
});

t.test('seed layer plans, H100-like device', async (t) => {
  t.same(seedPlans(H100_CAPS), EXPECTED.h100);
});

t.test('plans are quick and need no GPU', async (t) => {
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) seedPlans(LAVAPIPE_CAPS);
  t.ok(performance.now() - t0 < 1000, 'ten tables of 108 plans in under a second');
});

t.test('flags steer the plans', async (t) => {
  const smem = seedPlans(LAVAPIPE_CAPS, { ...DEFAULTS, convSchedule: 'smem' });
  t.equal(smem['conv.enc1.dgrad.b32'], '4x smem D-1', 'forced smem keeps smem for few rows too');
  t.match(smem['conv.enc3.wgrad.b32'], /^wsmem /);
  const reg = seedPlans(H100_CAPS, { ...DEFAULTS, convSchedule: 'reg' });
  t.match(reg['conv.enc2.fwd.b32'], /^reg R16 PJ8 /, 'reg forced on a GPU: 8 positions per lane');
  t.match(reg['conv.enc2.wgrad.b32'], /^wreg .* S\d+$/);
  t.notMatch(reg['conv.enc2.wgrad.b32'], /tex/, 'no textures off CPU devices');
  const plain = seedPlans(LAVAPIPE_CAPS, { ...DEFAULTS, convRepack1x1: true, convUniformWeights: false, convWgradRows: false, convWgradTextures: '0' });
  t.equal(plain['conv.res1x1.fwd.b32'], 'reg R32 PJ4 chan D1 vx0 vy w:pack');
  t.match(plain['conv.enc3.wgrad.b32'], /^wreg R16 CPL2 T3 S\d+$/);
  const noSubgroups = { ...H100_CAPS, subgroups: false };
  t.match(seedPlans(noSubgroups)['convT.decT2.fwd.b32'], /^4x smem D-1$/, 'without subgroups few-row passes stay smem on a GPU');
  const forced = seedPlans(noSubgroups, { ...DEFAULTS, convSchedule: 'reg' });
  t.match(forced['conv.enc2.fwd.b32'], /^reg .* nb$/, 'reg forced without subgroups: every lane loads its weights');
  t.match(forced['conv.enc2.wgrad.b32'], /^wreg .* nb$/, 'and weight gradients load their rows of A');
});

t.test('SwiftShader (subgroups of 4): the reg kernels without broadcast', async (t) => {
  const plans = seedPlans(SWIFTSHADER_CAPS);
  for (const [name, plan] of Object.entries(plans)) {
    if (name.includes('.wgrad.')) t.match(plan, /^w(reg|rows) .* nb$/, `${name}: ${plan}`);
    else t.match(plan, /^(\dx )?reg [^+]* nb( \+ .* nb)?$/, `${name}: ${plan}`);
  }
  t.equal(plans['conv.enc1.dgrad.b32'].includes('smem'), false, 'the 3-row input gradient does not idle a 64-row smem tile');
  const lavapipe = seedPlans(LAVAPIPE_CAPS, { ...DEFAULTS, convBroadcast: false });
  t.match(lavapipe['conv.enc3.fwd.b32'], / nb$/, 'flag convBroadcast=false on lavapipe: the same kernels as on SwiftShader');
  t.match(lavapipe['conv.enc3.wgrad.b32'], /^wrows .* nb$/);
});

// ---------------------------------------------------------------------------------------------
// The codebook search: z [B * 256, 64] against K = 512 codes (seed and quick presets: 16x16
// latents, D = 64), as a matmul (z @ E^T with E [512, 64] read transposed, and z @ E with E
// stored [64, 512]) and as nearestCode.

function vqPlans(caps: typeof LAVAPIPE_CAPS, f: Flags = DEFAULTS): Record<string, string> {
  const out: Record<string, string> = {};
  for (const B of [8, 32, 256]) {
    const n = B * 256;
    const mm = (transB: boolean) => {
      const p = planMatmul({ M: n, N: 512, K: 64, transB }, caps, f);
      return `${describeMatmulPlan(p)} grid ${p.grid.join('x')}`;
    };
    out[`matmul.z@E^T.b${B}`] = mm(true);
    out[`matmul.z@E.b${B}`] = mm(false);
    const p = planNearest({ n, k: 512, d: 64 }, caps, f);
    out[`nearest.b${B}`] = `${describeNearestPlan(p)} grid ${p.grid.join('x')}`;
  }
  return out;
}

const VQ_EXPECTED: Record<'lavapipe' | 'h100', Record<string, string>> = {
  lavapipe: {
    'matmul.z@E^T.b8': 'reg 32x8 sg b1o4 grid 8x64x1',
    'matmul.z@E.b8': 'reg 32x8 sg b4o4 grid 8x64x1',
    'nearest.b8': 'reg 12x8 sg v4 un16 grid 22x1x1',
    'matmul.z@E^T.b32': 'reg 32x8 sg b1o4 grid 8x256x1',
    'matmul.z@E.b32': 'reg 32x8 sg b4o4 grid 8x256x1',
    'nearest.b32': 'reg 12x8 sg v4 un16 grid 86x1x1',
    'matmul.z@E^T.b256': 'reg 32x8 sg b1o4 grid 8x2048x1',
    'matmul.z@E.b256': 'reg 32x8 sg b4o4 grid 8x2048x1',
    'nearest.b256': 'reg 12x8 sg v4 un16 grid 683x1x1',
  },
  h100: {
    'matmul.z@E^T.b8': 'smem 64x64 b1o4 grid 8x32x1',
    'matmul.z@E.b8': 'smem 64x64 b4o4 grid 8x32x1',
    'nearest.b8': 'smem 64x64 grid 32x1x1',
    'matmul.z@E^T.b32': 'smem 64x64 b1o4 grid 8x128x1',
    'matmul.z@E.b32': 'smem 64x64 b4o4 grid 8x128x1',
    'nearest.b32': 'smem 64x64 grid 128x1x1',
    'matmul.z@E^T.b256': 'smem 64x64 b1o4 grid 8x1024x1',
    'matmul.z@E.b256': 'smem 64x64 b4o4 grid 8x1024x1',
    'nearest.b256': 'smem 64x64 grid 1024x1x1',
  },
};

t.test('codebook-search plans, lavapipe-like device', async (t) => {
  t.same(vqPlans(LAVAPIPE_CAPS), VQ_EXPECTED.lavapipe);
});

t.test('codebook-search plans, H100-like device', async (t) => {
  t.same(vqPlans(H100_CAPS), VQ_EXPECTED.h100);
});

t.test('flags and options steer the matmul and nearest-code plans', async (t) => {
  const mm = (caps: typeof LAVAPIPE_CAPS, f: Flags, s = { M: 100, N: 7, K: 9 }, schedule?: 'reg' | 'smem') => describeMatmulPlan(planMatmul(s, caps, f, schedule));
  t.equal(mm(LAVAPIPE_CAPS, DEFAULTS), 'reg 32x8 sg b1o1', 'N % 4 != 0: scalar B loads and stores');
  t.equal(mm(LAVAPIPE_CAPS, { ...DEFAULTS, matmulSubgroups: false }), 'reg 8x8 b1o1', 'no sharing: 8 rows');
  t.equal(mm({ ...LAVAPIPE_CAPS, subgroupMinSize: 4 }, DEFAULTS), 'reg 8x8 b1o1', 'subgroups under 8 lanes cannot share');
  t.equal(mm(LAVAPIPE_CAPS, { ...DEFAULTS, matmulTile: '16x4' }), 'reg 16x4 sg b1o1');
  t.equal(mm(LAVAPIPE_CAPS, { ...DEFAULTS, matmulSchedule: 'smem' }), 'smem 64x64 b1o1');
  t.equal(mm(H100_CAPS, { ...DEFAULTS, matmulSchedule: 'reg' }), 'reg 32x8 sg b1o1');
  t.equal(mm(H100_CAPS, { ...DEFAULTS, matmulSchedule: 'reg' }, undefined, 'smem'), 'smem 64x64 b1o1', 'an explicit schedule beats the flag');
  t.throws(() => planMatmul({ M: 65536 * 33, N: 4, K: 1 }, LAVAPIPE_CAPS, DEFAULTS), /needs 67584 workgroup rows \(more than 65535\); split the batch/);

  const near = (caps: typeof LAVAPIPE_CAPS, f: Flags, s: { n: number; k: number; d: number }, o = {}, bytes?: number) =>
    describeNearestPlan(planNearest(s, caps, f, o, bytes));
  t.equal(near(LAVAPIPE_CAPS, DEFAULTS, { n: 8192, k: 128, d: 64 }), 'reg 12x8 sg v4 un16 u2048', 'a codebook of 32 KiB binds as a uniform array');
  t.equal(near(LAVAPIPE_CAPS, DEFAULTS, { n: 8192, k: 128, d: 64 }, {}, 16384), 'reg 12x8 sg v4 un16', '... unless its buffer is smaller than the array');
  t.equal(near(LAVAPIPE_CAPS, DEFAULTS, { n: 300, k: 512, d: 64 }), 'reg 3x8 sg v4 un16', 'few rows: fewer per invocation');
  t.equal(near(LAVAPIPE_CAPS, DEFAULTS, { n: 8192, k: 512, d: 160 }), 'reg 8x32 sg v4 un2', 'wide rows: the looped tile');
  t.equal(near(LAVAPIPE_CAPS, DEFAULTS, { n: 8192, k: 33, d: 10 }), 'reg 12x8 sg v1 un10', 'D % 4 != 0: scalar loads, still unrolled');
  t.equal(near(LAVAPIPE_CAPS, { ...DEFAULTS, vqSubgroups: false }, { n: 8192, k: 512, d: 64 }), 'reg 16x16 v4 un2', 'no sharing: the looped tile');
  t.equal(near(LAVAPIPE_CAPS, DEFAULTS, { n: 8192, k: 512, d: 64 }, { subgroups: false }), 'reg 16x16 v4 un2');
  t.equal(near(LAVAPIPE_CAPS, { ...DEFAULTS, vqSchedule: 'smem' }, { n: 8192, k: 512, d: 64 }), 'smem 64x64');
  t.equal(near(H100_CAPS, DEFAULTS, { n: 8192, k: 512, d: 64 }, { schedule: 'reg', subgroups: false }), 'reg 16x16 v4 un2');
  t.throws(() => planNearest({ n: 1, k: 1, d: 1 }, H100_CAPS, DEFAULTS, { schedule: 'reg', subgroups: true }), /subgroups of 8 lanes are not available on nvidia hopper/);
  t.throws(() => planNearest({ n: 1, k: 1, d: 1 }, H100_CAPS, DEFAULTS, { schedule: 'fast' as 'reg' }), /must be 'reg' or 'smem', got 'fast'/);
});

// ---------------------------------------------------------------------------------------------
// Broadcast kernels and vec4 textures.

t.test('broadcast plan: outputs per invocation of the broadcast kernels', async (t) => {
  t.equal(broadcastPerInvocation(LAVAPIPE_CAPS), 16, 'CPU device: coordinates stepped over 16 outputs');
  t.equal(broadcastPerInvocation(SWIFTSHADER_CAPS), 16, 'SwiftShader is a CPU device too');
  t.equal(broadcastPerInvocation(H100_CAPS), 1, 'GPU: neighbouring invocations write neighbouring words');
});

t.test('vec4TextureFits: read-only storage textures, at most maxTextureDimension2D rows', async (t) => {
  const W = VEC4_TEXTURE_WIDTH;
  for (const caps of [LAVAPIPE_CAPS, H100_CAPS, SWIFTSHADER_CAPS]) {
    const rows = caps.maxTextureDimension2D;
    t.ok(vec4TextureFits(caps, W * rows), `${caps.description}: ${rows} full rows fit`);
    t.notOk(vec4TextureFits(caps, W * rows + 1), `${caps.description}: one more vec4 does not`);
    t.ok(vec4TextureFits(caps, 1), `${caps.description}: one vec4 fits`);
    t.notOk(vec4TextureFits(caps, 0), `${caps.description}: nothing does not`);
  }
  t.notOk(vec4TextureFits({ ...LAVAPIPE_CAPS, readonlyStorageTextures: false }, 1), 'no read-only storage textures: nothing fits');
});

// ---------------------------------------------------------------------------------------------
// Autotuner candidates (engine/candidates.ts, engine/conv/candidates.ts): for every seed layer's
// passes, the seed's codebook search and its matmul, under the three capability sets: the
// rule-based plan comes first, ids are distinct, and every candidate is one its launcher runs.

/** Each seed layer's passes at batch 32: [bench-style name, pass] (phases of a transposed pass numbered). */
function seedPasses(): { convs: [string, ConvPass][]; wgrads: [string, WgradPass][] } {
  const convs: [string, ConvPass][] = [];
  const wgrads: [string, WgradPass][] = [];
  for (const l of SEED_LAYERS) {
    const xs = [32, l.CI, l.H, l.H];
    const ws = l.transposed ? [l.CI, l.CO, l.K, l.K] : [l.CO, l.CI, l.K, l.K];
    const o = { stride: l.stride, padding: l.pad };
    const g = l.transposed ? C.convTranspose2dGeometry(xs, ws, o) : C.conv2dGeometry(xs, ws, o);
    const name = `${l.transposed ? 'convT' : 'conv'}.${l.name}`;
    const fwd = l.transposed ? transposedPasses(g) : [forwardConvPass(g)];
    const dgrad = l.transposed ? [forwardConvPass(g)] : transposedPasses(g);
    fwd.forEach((p, i) => convs.push([`${name}.fwd${fwd.length > 1 ? `.${i}` : ''}`, p]));
    dgrad.forEach((p, i) => convs.push([`${name}.dgrad${dgrad.length > 1 ? `.${i}` : ''}`, p]));
    wgrads.push([`${name}.wgrad`, wgradPass(g)]);
  }
  return { convs, wgrads };
}

const CAPS_SETS = { lavapipe: LAVAPIPE_CAPS, swiftshader: SWIFTSHADER_CAPS, h100: H100_CAPS };

/** Why a conv pass plan would not run (the launcher's own checks and the kernels' assumptions), or null. */
function convPlanProblem(p: C.ConvPassPlan, caps: typeof LAVAPIPE_CAPS): string | null {
  if (p.kind === 'smem') return null;
  const { pass, v } = p;
  if (![4, 8, 16].includes(v.PJ)) return `PJ ${v.PJ}`;
  if (p.NG * v.PJ < pass.QW || p.NPOS !== pass.B * pass.QH * p.NG) return 'grid does not cover the positions';
  if (v.bcast && !(caps.subgroups && caps.subgroupMinSize >= 8)) return 'broadcast without subgroups of 8';
  const kinp = v.mode === 'chan' ? Math.ceil(pass.KIN / 4) * 4 : pass.KIN;
  const floats = p.weights === 'pack' ? p.rowsPadded * kinp * pass.TY * p.packTXP : pass.ROWS * pass.KIN * pass.KH * pass.KW;
  if (v.uniformW * 16 > bucketSize(4 * floats)) return `uniform binding of ${v.uniformW * 16} bytes past the weight buffer`;
  if (v.uniformW * 16 > caps.maxUniformBufferBindingSize) return 'uniform binding past the limit';
  return null;
}

function wgradPlanProblem(p: C.WgradPlan, caps: typeof LAVAPIPE_CAPS): string | null {
  if (p.S * p.chunk < (p.kind === 'smem' ? p.MTOT : p.KITERS)) return 'chunks do not cover the positions';
  if (p.kind === 'smem') return null;
  if (p.v.bcast && !(caps.subgroups && caps.subgroupMinSize >= 8)) return 'broadcast without subgroups of 8';
  if ((p.v.texA || p.v.texX) && !caps.readonlyStorageTextures) return 'textures without read-only storage textures';
  if (p.v.texA && !p.v.vecA) return 'A through a texture without vec4 rows';
  return null;
}

for (const [name, caps] of Object.entries(CAPS_SETS)) {
  t.test(`autotune candidates, ${name}-like device: rule-based plan first, distinct, runnable`, async (t) => {
    const { convs, wgrads } = seedPasses();
    for (const [case_, pass] of convs) {
      const cands = convPassCandidates(pass, caps, DEFAULTS);
      const ids = cands.map(C.describeConvPassPlan);
      t.equal(ids[0], C.describeConvPassPlan(C.planConvPass(pass, C.planConvSchedule(caps, DEFAULTS), caps, DEFAULTS)), `${case_}: the rule-based plan first`);
      t.equal(new Set(ids).size, ids.length, `${case_}: distinct`);
      t.ok(cands.length >= 2, `${case_}: ${ids.join(' | ')}`);
      t.same(cands.map((p) => convPlanProblem(p, caps)).filter(Boolean), [], `${case_}: every candidate runs`);
    }
    for (const [case_, pass] of wgrads) {
      const cands = wgradCandidates(pass, caps, DEFAULTS);
      const ids = cands.map(C.describeWgradPlan);
      t.equal(ids[0], C.describeWgradPlan(C.planWgrad(pass, C.planConvSchedule(caps, DEFAULTS), caps, DEFAULTS)), `${case_}: the rule-based plan first`);
      t.equal(new Set(ids).size, ids.length, `${case_}: distinct`);
      t.ok(cands.length >= 2, `${case_}: ${ids.join(' | ')}`);
      t.same(cands.map((p) => wgradPlanProblem(p, caps)).filter(Boolean), [], `${case_}: every candidate runs`);
    }
    for (const B of [8, 32, 256]) {
      const n = B * 256;
      for (const transB of [false, true]) {
        const s = { M: n, N: 512, K: 64, zOut: 1, nRed: 1, aCount: 1, bCount: 1, transA: false, transB };
        const cands = matmulCandidates(s, caps, DEFAULTS);
        const ids = cands.map(describeMatmulPlan);
        t.equal(ids[0], describeMatmulPlan(planMatmul(s, caps, DEFAULTS)), `matmul b${B}: the rule-based plan first`);
        t.equal(new Set(ids).size, ids.length, `matmul b${B}: distinct: ${ids.join(' | ')}`);
        for (const p of cands) {
          t.ok(p.tile.schedule === 'smem' || (p.tile.tm % 8 === 0 && p.tile.tn % 4 === 0), `${describeMatmulPlan(p)}: a reg tile the emitter takes`);
          t.ok(!p.tile.shareA || (caps.subgroups && caps.subgroupMinSize >= 8), `${describeMatmulPlan(p)}: sharing only with subgroups of 8`);
          t.ok((p.grid[1] ?? 1) <= 65535, `${describeMatmulPlan(p)}: grid within limits`);
        }
      }
      const s = { n, k: 512, d: 64, codebookBytes: 512 * 64 * 4 };
      const cands = nearestCandidates(s, caps, DEFAULTS);
      const ids = cands.map(describeNearestPlan);
      t.equal(ids[0], describeNearestPlan(planNearest(s, caps, DEFAULTS, {}, s.codebookBytes)), `nearest b${B}: the rule-based plan first`);
      t.equal(new Set(ids).size, ids.length, `nearest b${B}: distinct: ${ids.join(' | ')}`);
      t.ok(cands.length >= 2, `nearest b${B}: more than one`);
      for (const p of cands) {
        if (p.kind !== 'reg') continue;
        t.ok(!p.sg || (caps.subgroupMinSize === 8 && caps.subgroupMaxSize === 8), `${describeNearestPlan(p)}: sharing only with subgroups of 8`);
        t.ok(p.uniformCodes * 16 <= s.codebookBytes, `${describeNearestPlan(p)}: the uniform array within the codebook`);
      }
    }
  });
}

t.test('autotune candidates on lavapipe for one layer, as data', async (t) => {
  const { convs, wgrads } = seedPasses();
  const conv = Object.fromEntries(convs);
  const wgrad = Object.fromEntries(wgrads);
  t.same(convPassCandidates(conv['conv.enc3.fwd'], LAVAPIPE_CAPS, DEFAULTS).map(C.describeConvPassPlan), [
    'reg R16 PJ16 tap D1 vx3 vy w:pack', 'smem D1', 'reg R16 PJ4 tap D1 vx3 vy w:pack', 'reg R16 PJ8 tap D1 vx3 vy w:pack',
  ]);
  t.same(convPassCandidates(conv['conv.res1x1.fwd'], LAVAPIPE_CAPS, DEFAULTS).map(C.describeConvPassPlan), [
    'reg R32 PJ4 chan D1 vx0 vy w:as-is u1024', 'smem D1', 'reg R32 PJ4 chan D1 vx0 vy w:as-is', 'reg R32 PJ4 chan D1 vx0 vy w:pack u1024',
    'reg R32 PJ8 chan D1 vx0 vy w:as-is u1024', 'reg R32 PJ16 chan D1 vx0 vy w:as-is u1024',
  ]);
  t.same(wgradCandidates(wgrad['conv.enc3.wgrad'], LAVAPIPE_CAPS, DEFAULTS).map(C.describeWgradPlan), [
    'wrows R16 TY3 T3 texA S2', 'wsmem S8', 'wreg R16 CPL2 T3 texAX S2', 'wrows R16 TY3 T3 S2', 'wrows R16 TY3 T3 texAX S2',
  ]);
});

t.test('autotune candidates: flags set away from their defaults are not varied', async (t) => {
  const { convs, wgrads } = seedPasses();
  const reg = { ...DEFAULTS, convSchedule: 'reg' as const, convUniformWeights: false, convRepack1x1: true, convWgradRows: false, convWgradTextures: '0' as const };
  for (const [case_, pass] of convs) {
    const ids = convPassCandidates(pass, LAVAPIPE_CAPS, reg).map(C.describeConvPassPlan);
    t.ok(ids.every((d) => /^reg .* w:(pack|none)$/.test(d)), `${case_}: reg, storage, repacked only (positions per lane vary): ${ids.join(' | ')}`);
  }
  for (const [case_, pass] of wgrads) t.equal(wgradCandidates(pass, LAVAPIPE_CAPS, reg).length, 1, `${case_}: the forced plan only`);
  const s = { M: 8192, N: 512, K: 64, zOut: 1, nRed: 1, aCount: 1, bCount: 1, transA: false, transB: true };
  t.same(matmulCandidates(s, LAVAPIPE_CAPS, { ...DEFAULTS, matmulSchedule: 'reg', matmulTile: '16x8' }).map(describeMatmulPlan), ['reg 16x8 sg b1o4']);
  const near = nearestCandidates({ n: 8192, k: 512, d: 64, codebookBytes: 131072 }, LAVAPIPE_CAPS, { ...DEFAULTS, vqSchedule: 'reg', vqSubgroups: false });
  t.same(near.map(describeNearestPlan), ['reg 16x16 v4 un2']);
});
