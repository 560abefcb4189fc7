// The vector quantiser of a VQ-VAE (SPEC sections 1, 2 and 4): the fused nearest-codebook search
// (shaders/vq_nearest.wgsl), quantisation as an autograd op with the straight-through
// estimator and the codebook / commitment losses, deterministic per-code sums of rows, and
// codebook statistics computed on the GPU (shaders/vq.wgsl). The EMA
// codebook and k-means++ initialisation are in vq_ema.ts.
import type { Capabilities } from './device.js';
import { type Flags, flags } from './flags.js';
import { bucketSize } from './pool.js';
import { record } from './autograd.js';
import { castTo } from './cast.js';
import { dispatchFill } from './fill.js';
import { declareAccumulators, fmaChain, shared } from './emit_tile.js';
import { withGemmTile } from './gemm_tile.js';
import { kernel, paramBlock, shaderKernel } from './kernel.js';
import { type Grid, type Kernel, grid1d, rt, uniformVec4s } from './runtime.js';
import { wgslKernel } from './shaders.js';
import { gatherBackward } from './shape.js';
import { tunedPlan } from './autotune.js';
import { NEAREST_TUNING } from './candidates.js';
import { type Tensor, assertDType, empty, keep, share, zeros } from './tensor.js';

export type VqSchedule = 'reg' | 'smem';

// Parameter blocks of the kernels launched here (vq_ema.ts launches the EMA and k-means ones).
const NORMS_PARAMS = paramBlock({ k: 'u32' });
/** writeDist: also write the squared distance. */
const NEAREST_REG_PARAMS = paramBlock({ n: 'u32', k: 'u32', writeDist: 'u32', _pad: 'u32' });
const NEAREST_SMEM_PARAMS = paramBlock({ n: 'u32', k: 'u32', writeDist: 'u32' });
/** dv: vectors per row. */
const GATHER_LOSS_PARAMS = paramBlock({ n: 'u32', dv: 'u32', k: 'u32' });
/** invCount: 1 / (N D); codebookTerm: 1 to include the codebook term in the total. */
const LOSS_FINAL_PARAMS = paramBlock({ parts: 'u32', invCount: 'f32', beta: 'f32', codebookTerm: 'f32' });
/** count: vectors; scale: 2 beta / (N D). */
const COMMIT_GRAD_PARAMS = paramBlock({ count: 'u32', scale: 'f32' });
const CODE_COUNTS_PARAMS = paramBlock({ n: 'u32', k: 'u32' });
const STATS_PARAMS = paramBlock({ k: 'u32' });
const USAGE_MARK_PARAMS = paramBlock({ k: 'u32', step: 'u32' });
const USAGE_COUNT_PARAMS = paramBlock({ k: 'u32', step: 'u32', window: 'u32' });

/**
 * How row-wise kernels of vq.wgsl read rows of width d: as vec4f when d is a multiple of 4
 * (lavapipe pays per load instruction), else as f32. `dv` = vectors per row.
 */
export function vecSpec(d: number): { values: { V: string; HSUM: string }; w: number; dv: number } {
  return d % 4 === 0
    ? { values: { V: 'vec4f', HSUM: 'x.x + x.y + x.z + x.w' }, w: 4, dv: d / 4 }
    : { values: { V: 'f32', HSUM: 'x' }, w: 1, dv: d };
}

/** The capabilities nearest-code plans read. */
export type VqCaps = Pick<Capabilities, 'isCpu' | 'subgroups' | 'subgroupMinSize' | 'subgroupMaxSize' | 'maxUniformBufferBindingSize' | 'description'>;

/** The flags nearest-code plans read. */
export type VqFlags = Pick<Flags, 'vqSchedule' | 'vqSubgroups'>;

/**
 * The schedule of the nearest-codebook kernel: `requested`, else flag vqSchedule, else 'reg'
 * on a CPU Vulkan device (no workgroup memory, no barriers) and 'smem' on a GPU.
 */
export function planVqSchedule(caps: VqCaps, f: VqFlags, requested?: VqSchedule): VqSchedule {
  const s = requested ?? f.vqSchedule;
  if (s === 'auto') return caps.isCpu ? 'reg' : 'smem';
  if (s !== 'reg' && s !== 'smem') throw new Error(`nearest-code schedule must be 'reg' or 'smem', got '${s}'`);
  return s;
}

/** The schedule of the nearest-codebook kernel on this device now (see planVqSchedule). */
export function vqSchedule(requested?: VqSchedule): VqSchedule {
  return planVqSchedule(rt().caps, flags(), requested);
}

/** Checks z [N, D] (f32, or f16 where `halfZ`) against an f32 codebook [K, D]. */
function checkCodebook(op: string, z: Tensor, codebook: Tensor, halfZ = false): { n: number; k: number; d: number } {
  assertDType(op, 'f32', codebook);
  if (!(halfZ && z.dtype === 'f16')) assertDType(op, 'f32', z);
  if (z.rank !== 2 || codebook.rank !== 2 || z.shape[1] !== codebook.shape[1]) {
    throw new Error(
      `${op}: z must be [N, D] and the codebook [K, D] with the same D, got z [${z.shape.join(', ')}] and codebook [${codebook.shape.join(', ')}]`,
    );
  }
  const [k, d] = codebook.shape;
  if (k === 0 || d === 0) throw new Error(`${op}: empty codebook [${codebook.shape.join(', ')}]`);
  return { n: z.shape[0], k, d };
}

/** ||e_k||^2 for each row of a [K, D] codebook, as a [K] tensor. */
export function codebookNorms(codebook: Tensor): Tensor {
  assertDType('codebookNorms', 'f32', codebook);
  if (codebook.rank !== 2) throw new Error(`codebookNorms: codebook must be [K, D], got [${codebook.shape.join(', ')}]`);
  const [k, d] = codebook.shape;
  const out = empty([k]);
  rt().dispatch(shaderKernel('vq_nearest', 'norms', { D: d }, NORMS_PARAMS), [codebook.buffer, out.buffer], NORMS_PARAMS.pack({ k }), grid1d(Math.ceil(k / 64)));
  return out;
}

/** The register tile of nearest_reg for N rows of width D and K codes. */
export interface RegPlan {
  /** z rows per invocation. */
  rm: number;
  /** Codes per step of the codebook loop. */
  rn: number;
  /** Dims per load: 4 (vec4f) when D % 4 == 0, else 1. */
  v: number;
  /** Loads per row and code per iteration of the d loop; D / v when the d loop is unrolled. */
  un: number;
  /**
   * vec4s of the uniform array the codebook binds as (a power of two, so few kernels serve every
   * K), or 0 to read it from storage.
   */
  uniformCodes: number;
}

// With subgroups of 8, rows up to UNROLL_D wide take the unrolled tile: RM = 12 rows x RN = 8
// codes (one per lane of the subgroup, shared by broadcast) over the whole row width per step, so
// the d loop runs once and every index into the lane's copy of its rows is a constant: llvmpipe
// turns a private array indexed by a loop variable into per-lane gathers. A codebook that fits
// one uniform binding is read from it (a per-lane uniform load is one branch-free gather, a
// storage load a bounds-checked scalar load per lane). 12 rows beat 8 to 16 and the looped tile
// (bench: vq nearest fused); wider rows keep the looped tile (RM 16, or 8 past D = 128). RM
// shrinks for small N so the work still spreads over several workgroups.
const UNROLL_D = 64;

/** The reg schedule's tile for n rows of z, K codes of width d; `bytes`: the codebook's buffer size. */
export function planNearestReg(n: number, k: number, d: number, sg: boolean, caps: VqCaps, bytes = bucketSize(4 * k * d)): RegPlan {
  const v = d % 4 === 0 ? 4 : 1;
  // Without subgroups every lane would load all 8 codes per step itself; that fallback keeps the
  // looped tile (the unrolled one then takes LLVM half a minute to compile).
  const unrolled = sg && d <= UNROLL_D;
  let rm = unrolled ? 12 : d <= 128 ? 16 : 8;
  while (rm > 3 && Math.ceil(n / rm) < 64) rm = Math.ceil(rm / 2);
  // Looped: two d steps per iteration of the d loop when they divide it, so each accumulator is
  // assigned (load, blend, store on llvmpipe) once per 8 multiply-adds instead of 4.
  const un = unrolled ? d / v : (d / v) % 2 === 0 ? 2 : 1;
  const rn = unrolled ? 8 : sg ? 32 : 16;
  // (Codes past K in the declared array are never read.)
  const uniformCodes = unrolled && v === 4 ? uniformVec4s(caps, k * d, bytes) : 0;
  return { rm, rn, v, un, uniformCodes };
}

/**
 * Whether nearest_reg shares codebook loads through subgroups: needs subgroups of exactly 8
 * lanes (its workgroup is one subgroup of 8). `requested` forces it (and throws where the device
 * cannot); else flag vqSubgroups (VQ_VQ_SUBGROUPS=0 turns it off).
 */
export function planRegSubgroups(caps: VqCaps, f: VqFlags, requested?: boolean): boolean {
  const can = caps.subgroups && caps.subgroupMinSize === 8 && caps.subgroupMaxSize === 8;
  if (requested !== undefined) {
    if (requested && !can) throw new Error(`nearestCode: subgroups of 8 lanes are not available on ${caps.description}`);
    return requested;
  }
  return can && f.vqSubgroups;
}

/** The nearest-code kernel for N rows of width D against K codes, and its grid. */
export type NearestPlan = { kind: 'smem'; D: number; grid: Grid } | (RegPlan & { kind: 'reg'; D: number; sg: boolean; grid: Grid });

/**
 * The plan of nearestCode for z [n, d] and a codebook [k, d], pure: (shapes, device
 * capabilities, flags) -> plan. `opts` force a schedule or subgroup sharing; `codebookBytes` is
 * the codebook buffer's size (default: the pool's bucket for it).
 */
export function planNearest(
  s: { n: number; k: number; d: number },
  caps: VqCaps,
  f: VqFlags,
  opts: { schedule?: VqSchedule; subgroups?: boolean } = {},
  codebookBytes?: number,
): NearestPlan {
  const schedule = planVqSchedule(caps, f, opts.schedule);
  if (schedule === 'smem') return { kind: 'smem', D: s.d, grid: grid1d(Math.ceil(s.n / 64)) };
  const sg = planRegSubgroups(caps, f, opts.subgroups);
  const tile = planNearestReg(s.n, s.k, s.d, sg, caps, codebookBytes);
  return { kind: 'reg', D: s.d, sg, ...tile, grid: grid1d(Math.ceil(s.n / tile.rm / 8)) };
}

/** One line naming a nearest-code plan's kernel, e.g. `reg 12x8 sg v4 un16 u2048`. */
export function describeNearestPlan(p: NearestPlan): string {
  if (p.kind === 'smem') return 'smem 64x64';
  return `reg ${p.rm}x${p.rn}${p.sg ? ' sg' : ''} v${p.v} un${p.un}${p.uniformCodes ? ` u${p.uniformCodes}` : ''}`;
}

/** The reg schedule's tile for n rows of z and this codebook on this device now (for tests and benchmarks). */
export function nearestRegPlan(n: number, codebook: Tensor, subgroups?: boolean): RegPlan {
  const [k, d] = codebook.shape;
  const caps = rt().caps;
  return planNearestReg(n, k, d, planRegSubgroups(caps, flags(), subgroups), caps, codebook.buffer.size);
}

/**
 * The unrolled statements of nearest_reg (see the comment above it in vq_nearest.wgsl);
 * v = dims per load (1 or 4), un = loads per row and code per iteration of the d loop.
 */
function regBody(rm: number, rn: number, sg: boolean, v: number, un: number): Record<string, string> {
  const steps = [...Array(un).keys()];
  const rows = [...Array(rm).keys()];
  const codes = [...Array(rn).keys()];
  const groups = [...Array(rn / 8).keys()];
  const each = (over: number[], indent: string, f: (i: number) => string) => over.map((i) => indent + f(i)).join('\n');
  const block = (indent: string, f: (r: number, j: number) => string) => rows.flatMap((r) => codes.map((j) => indent + f(r, j))).join('\n');
  // The codes' ||e||^2: with subgroups one load per 8 codes, shared like the codes themselves.
  const normLoads = sg
    ? each(groups, '    ', (h) => `let nv${h} = norms[min(k0 + ${8 * h}u + lane, p.k - 1u)];`) + '\n' +
      each(codes, '    ', (j) => `let n${j} = ${shared((n) => `nv${n}`, j)};`)
    : each(codes, '    ', (j) => `let n${j} = norms[min(k0 + ${j}u, p.k - 1u)];`);
  const update =
    normLoads +
    '\n' +
    codes
      .map(
        (j) =>
          `    if (k0 + ${j}u < p.k) {\n` +
          each(rows, '      ', (r) => `{ let dk = n${j} - 2.0 * a${r}_${j}; if (dk < b${r}) { b${r} = dk; i${r} = k0 + ${j}u; } }`) +
          '\n    }',
      )
      .join('\n');
  const comps = v === 4 ? ['.x', '.y', '.z', '.w'] : [''];
  // One chained update per accumulator and iteration of the d loop, in ascending d.
  const terms = (r: number, j: number) => steps.flatMap((u) => comps.map((c) => [`z${r}_${u}${c}`, `e${j}_${u}${c}`] as const));
  const codeLoads = steps
    .map((u) =>
      sg
        ? each(groups, '      ', (h) => `let ev${h}_${u} = e[eo${h} + d + ${u}u];`) + '\n' + each(codes, '      ', (j) => `let e${j}_${u} = ${shared((n) => `ev${n}_${u}`, j)};`)
        : each(codes, '      ', (j) => `let e${j}_${u} = e[eo${j} + d + ${u}u];`),
    )
    .join('\n');
  return {
    VT: v === 4 ? 'vec4f' : 'f32',
    ZZ: v === 4 ? 'fma(v.w, v.w, fma(v.z, v.z, fma(v.y, v.y, fma(v.x, v.x, zz))))' : 'fma(v, v, zz)',
    SG_PARAM: sg ? ', @builtin(subgroup_invocation_id) lane: u32' : '',
    DECL_BEST: each(rows, '  ', (r) => `var b${r} = BIG; var i${r} = 0u;`),
    CODE_OFFSETS: sg
      ? each(groups, '    ', (h) => `let eo${h} = min(k0 + ${8 * h}u + lane, p.k - 1u) * DV;`)
      : each(codes, '    ', (j) => `let eo${j} = min(k0 + ${j}u, p.k - 1u) * DV;`),
    DECL_ACC: declareAccumulators(rm, rn, (r, j) => `a${r}_${j}`, 'f32', '    ').join('\n'),
    LOADS: codeLoads + '\n' + steps.map((u) => each(rows, '      ', (r) => `let z${r}_${u} = zr[(d + ${u}u) * RM + ${r}u];`)).join('\n'),
    FMAS: block('      ', (r, j) => fmaChain(`a${r}_${j}`, terms(r, j))),
    UPDATE: update,
    STORES: each(rows, '  ', (r) => `finish(row0 + ${r}u, ${r}u, b${r}, i${r}, &zr);`),
  };
}

/**
 * z's element type in the nearest-code kernels: f16 rows load converted to f32 (distances are
 * f32 either way, and the codebook is f32).
 */
type ZType = 'f32' | 'f16';

/** WGSL of z's binding type and of a load of `index` as f32 (`vt`: vec4f or f32). */
function zAccess(z: ZType, vt: string, index: string): { Z_ARRAY: string; Z_AT: string } {
  if (z === 'f32') return { Z_ARRAY: `array<${vt}>`, Z_AT: `z[${index}]` };
  return { Z_ARRAY: `array<${vt === 'vec4f' ? 'vec4<f16>' : 'f16'}>`, Z_AT: `${vt}(z[${index}])` };
}

/** The `enable` lines a nearest-code kernel needs ('' for f32 z without subgroups). */
const enables = (z: ZType, sg: boolean) => (z === 'f16' ? 'enable f16;\n' : '') + (sg ? 'enable subgroups;\n' : '');

function regKernel(d: number, plan: RegPlan, sg: boolean, z: ZType): Kernel {
  const { rm, rn, v, un, uniformCodes } = plan;
  return kernel('vq_nearest.nearest_reg', { D: d, v, rm, rn, un, sg, uniformCodes, z }, () => {
    const codes = uniformCodes
      ? `var<uniform> e: array<vec4f, ${uniformCodes}>;`
      : `var<storage, read> e: array<${v === 4 ? 'vec4f' : 'f32'}>;`;
    return (
      enables(z, sg) +
      wgslKernel('vq_nearest', 'nearest_reg', {
        PARAMS: NEAREST_REG_PARAMS.wgsl, D: d, DV: d / v, RM: rm, RN: rn, UN: un, CODES: codes, ...regBody(rm, rn, sg, v, un),
        ...zAccess(z, v === 4 ? 'vec4f' : 'f32', 'o + d'),
      })
    );
  });
}

function smemKernel(d: number, z: ZType): Kernel {
  return kernel('vq_nearest.nearest_smem', { D: d, z }, () =>
    enables(z, false) +
    withGemmTile(wgslKernel('vq_nearest', 'nearest_smem', { D: d, PARAMS: NEAREST_SMEM_PARAMS.wgsl, ...zAccess(z, 'f32', 'row * D + d') })));
}

export interface NearestOptions {
  /** Also return the squared distance to the chosen code. */
  distances?: boolean;
  /** Kernel schedule (default: see vqSchedule). */
  schedule?: VqSchedule;
  /** reg schedule: share codebook loads through subgroups (default: when the device can). */
  subgroups?: boolean;
  /** Run this plan (the autotuner times its candidates so); default: planNearest's, or the tuned one. */
  plan?: NearestPlan;
}

export interface NearestResult {
  /** u32 [N]: index of the nearest codebook row (the lowest index on exact ties). */
  indices: Tensor;
  /** f32 [N]: ||z - e_idx||^2 (clamped at 0), only when asked for. */
  distances?: Tensor;
}

/**
 * For each row of z [N, D] (f32 or f16), the index of the nearest row of codebook [K, D] (f32)
 * by squared L2 distance in f32 (fused: the N x K distance matrix is never stored). Not
 * differentiable.
 */
export function nearestCode(z: Tensor, codebook: Tensor, opts: NearestOptions = {}): NearestResult {
  const { n, k, d } = checkCodebook('nearestCode', z, codebook, true);
  const zType: ZType = z.dtype === 'f16' ? 'f16' : 'f32';
  const r = rt();
  // Explicit options (and the autotuner's `plan`) win; else the tuned plan where flag autotune
  // asks for one (the tuner measures f32 rows, so f16 rows take the rule's plan).
  const rule = () => planNearest({ n, k, d }, r.caps, flags(), opts, codebook.buffer.size);
  const tunable = opts.schedule === undefined && opts.subgroups === undefined && zType === 'f32';
  const plan = opts.plan ?? (tunable ? tunedPlan(NEAREST_TUNING, { n, k, d, codebookBytes: codebook.buffer.size }, rule) : rule());
  const indices = empty([n], 'u32');
  const distances = opts.distances ? empty([n]) : null;
  if (n === 0) return distances ? { indices, distances } : { indices };
  const norms = codebookNorms(codebook);
  // Without distances the kernel still binds a (dummy) buffer there; the flag leaves it unwritten.
  const dummy = distances ? null : empty([1]);
  const bufs: (GPUBuffer | GPUBufferBinding)[] = [z.buffer, codebook.buffer, norms.buffer, indices.buffer, (distances ?? dummy!).buffer];
  const writeDist = !!distances;
  if (plan.kind === 'reg') {
    if (plan.uniformCodes) bufs[1] = { buffer: codebook.buffer, size: plan.uniformCodes * 16 };
    r.dispatch(regKernel(d, plan, plan.sg, zType), bufs, NEAREST_REG_PARAMS.pack({ n, k, writeDist }), plan.grid);
  } else {
    r.dispatch(smemKernel(d, zType), bufs, NEAREST_SMEM_PARAMS.pack({ n, k, writeDist }), plan.grid);
  }
  norms.dispose();
  dummy?.dispose();
  return distances ? { indices, distances } : { indices };
}

// ---------------------------------------------------------------------------------------------
// Per-code sums of rows.

function checkIndices(op: string, indices: Tensor, k: number): number {
  assertDType(op, 'u32', indices);
  if (indices.rank !== 1) throw new Error(`${op}: indices must be a u32 [N] tensor, got ${indices.describe()}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`${op}: the number of codes must be a positive integer, got ${k}`);
  return indices.size;
}

/**
 * out[k] = the sum of the rows x[i] with indices[i] = k: [K, D] from x [N, D]. Deterministic
 * (gather's segmented backward: each code's rows, in row order, are cut into fixed segments
 * summed in parallel, then the segments in order), so one code holding every row costs no
 * more than rows spread over all codes.
 */
export function segmentSum(x: Tensor, indices: Tensor, k: number): Tensor {
  assertDType('segmentSum', 'f32', x);
  const n = checkIndices('segmentSum', indices, k);
  if (x.rank !== 2 || x.shape[0] !== n) {
    throw new Error(`segmentSum: x must be [N, D] with N = ${n} (one row per index), got [${x.shape.join(', ')}]`);
  }
  return gatherBackward(x, indices, [k, x.shape[1]], 0);
}

// ---------------------------------------------------------------------------------------------
// Quantise as an autograd op.

export interface QuantizeOptions {
  /** Commitment weight (SPEC section 2; default 1.25, the seed's best). */
  beta?: number;
  /**
   * Include the codebook term in `loss` (default true). Off for an EMA codebook, where the
   * codebook takes no gradient and the loss is the commitment term only.
   */
  codebookLoss?: boolean;
  /** Nearest-code kernel schedule (default: see vqSchedule). */
  schedule?: VqSchedule;
  /** Code indices computed already (u32 [N]); skips the nearest-code search. */
  indices?: Tensor;
}

export interface QuantizeResult {
  /**
   * [N, D]: the codebook rows E[idx]. Straight-through: its gradient is copied to z
   * unchanged and none of it reaches the codebook.
   */
  zq: Tensor;
  /** u32 [N]: the nearest code of each row (lowest index on exact ties). */
  indices: Tensor;
  /** []: mean((E[idx] - sg z)^2); its gradient reaches only the codebook. */
  codebookLoss: Tensor;
  /** []: beta * mean((sg E[idx] - z)^2); its gradient reaches only z. */
  commitmentLoss: Tensor;
  /** []: codebookLoss + commitmentLoss (commitmentLoss alone with codebookLoss: false). */
  loss: Tensor;
}

/** Vectors per workgroup of gather_loss (256 threads x PER in vq.wgsl). */
const GATHER_CHUNK = 256 * 16;

/**
 * The VQ-VAE quantiser (SPEC sections 1-2) on z [N, D] (one row per latent vector; f32, or f16
 * whose f32 copy the losses and z_q use) and an f32 codebook [K, D]: nearest codes, z_q with the straight-through estimator, and the codebook and
 * commitment losses, each differentiable into exactly what SPEC section 2 says:
 *   d codebookLoss / dE_k = 2/(N D) sum_{i: idx_i = k} (E_k - z_i)        (not z)
 *   d commitmentLoss / dz_i = 2 beta/(N D) (z_i - E_{idx_i})             (not E)
 *   d (sum zq * G) / dz = G                                              (not E)
 * The codebook gradient is a per-code segment sum (segmentSum: no float atomics, the same
 * bits every run, parallel even when one code holds every row). Backward rules use z_q, never the codebook, so updating the
 * codebook in place (EMA) before backward does not change the gradients.
 */
export function vectorQuantize(z: Tensor, codebook: Tensor, opts: QuantizeOptions = {}): QuantizeResult {
  if (z.dtype === 'f16') {
    // f16 rows: the code search reads them as they are; the straight-through path and the losses
    // run on their f32 copy (exact; its gradient reaches z as f16 through the cast).
    checkCodebook('vectorQuantize', z, codebook, true);
    const indices = opts.indices ?? nearestCode(z, codebook, { schedule: opts.schedule }).indices;
    const out = vectorQuantize(castTo(z, 'f32'), codebook, { ...opts, indices });
    if (indices !== opts.indices) indices.dispose();
    return out;
  }
  const { n, k, d } = checkCodebook('vectorQuantize', z, codebook);
  const beta = opts.beta ?? 1.25;
  const codebookTerm = opts.codebookLoss ?? true;
  if (!Number.isFinite(beta)) throw new Error(`vectorQuantize: beta must be a finite number, got ${beta}`);
  if (n === 0) throw new Error(`vectorQuantize: the losses are means over 0 elements (z is [${z.shape.join(', ')}])`);
  let indices: Tensor;
  if (opts.indices) {
    if (checkIndices('vectorQuantize', opts.indices, k) !== n) {
      throw new Error(`vectorQuantize: indices ${opts.indices.describe()} do not match z [${z.shape.join(', ')}]`);
    }
    indices = share(opts.indices);
  } else {
    indices = nearestCode(z, codebook, { schedule: opts.schedule }).indices;
  }
  const r = rt();
  const zq = empty([n, d]);
  const v = vecSpec(d);
  const parts = Math.ceil((n * v.dv) / GATHER_CHUNK);
  const partial = empty([parts]);
  r.dispatch(
    shaderKernel('vq', 'gather_loss', v.values, GATHER_LOSS_PARAMS),
    [z.buffer, codebook.buffer, indices.buffer, zq.buffer, partial.buffer],
    GATHER_LOSS_PARAMS.pack({ n, dv: v.dv, k }),
    grid1d(parts),
  );
  const codebookLoss = empty([]);
  const commitmentLoss = empty([]);
  const loss = empty([]);
  r.dispatch(
    shaderKernel('vq', 'loss_final', {}, LOSS_FINAL_PARAMS),
    [partial.buffer, codebookLoss.buffer, commitmentLoss.buffer, loss.buffer],
    LOSS_FINAL_PARAMS.pack({ parts, invCount: 1 / (n * d), beta, codebookTerm: codebookTerm ? 1 : 0 }),
    [1],
  );
  partial.dispose();

  record(zq, 'vq.straightThrough', [z], [], (g) => [g]);
  record(codebookLoss, 'vq.codebookLoss', [codebook], [z, zq, indices], (g, [z, zq, idx]) => [codebookGrad(g, z, zq, idx, k)]);
  record(commitmentLoss, 'vq.commitmentLoss', [z], [z, zq], (g, [z, zq]) => [commitGrad(g, z, zq, beta)]);
  if (codebookTerm) {
    const wantZ = z.requiresGrad;
    const wantE = codebook.requiresGrad;
    record(loss, 'vq.loss', [z, codebook], [z, zq, indices], (g, [z, zq, idx]) => [
      wantZ ? commitGrad(g, z, zq, beta) : null,
      wantE ? codebookGrad(g, z, zq, idx, k) : null,
    ]);
  } else {
    record(loss, 'vq.loss', [z], [z, zq], (g, [z, zq]) => [commitGrad(g, z, zq, beta)]);
  }
  return { zq, indices, codebookLoss, commitmentLoss, loss };
}

/** g * 2 beta / (N D) * (z - zq): the commitment term's gradient at z. */
function commitGrad(g: Tensor, z: Tensor, zq: Tensor, beta: number): Tensor {
  const dz = empty(z.shape);
  const v = vecSpec(z.shape[1]);
  const count = z.size / v.w;
  rt().dispatch(
    shaderKernel('vq', 'commit_grad', v.values, COMMIT_GRAD_PARAMS),
    [z.buffer, zq.buffer, g.buffer, dz.buffer],
    COMMIT_GRAD_PARAMS.pack({ count, scale: (2 * beta) / z.size }),
    grid1d(Math.ceil(count / 256)),
  );
  return dz;
}

/**
 * g * 2 / (N D) * segment sum of (zq - z) per code: the codebook term's gradient at E. The
 * per-row differences come from the commitment kernel (with z and zq swapped, beta 1); the
 * segment sum is gather's deterministic backward, which spreads a code that most rows chose
 * (a collapsed codebook, as at initialisation) over many threads instead of one loop.
 */
function codebookGrad(g: Tensor, z: Tensor, zq: Tensor, indices: Tensor, k: number): Tensor {
  const diff = commitGrad(g, zq, z, 1);
  const de = gatherBackward(diff, indices, [k, z.shape[1]], 0);
  diff.dispose();
  return de;
}

// ---------------------------------------------------------------------------------------------
// Statistics on the GPU (nothing is read back unless the caller reads the scalars).

/** u32 [K]: how many of the indices equal each code (integer atomics; exact). */
export function codeCounts(indices: Tensor, k: number): Tensor {
  const n = checkIndices('codeCounts', indices, k);
  const counts = zeros([k], 'u32');
  if (n > 0) rt().dispatch(shaderKernel('vq', 'code_counts', {}, CODE_COUNTS_PARAMS), [indices.buffer, counts.buffer], CODE_COUNTS_PARAMS.pack({ n, k }), grid1d(Math.ceil(n / 256)));
  return counts;
}

export interface CodebookStats {
  /** []: exp(-sum_k p_k ln(p_k + 1e-10)), p_k = counts[k] / sum(counts) (1 for no rows). */
  perplexity: Tensor;
  /** []: number of codes with a non-zero count (as f32). */
  used: Tensor;
}

/** Perplexity and number of codes used, from per-code counts (u32 [K]); one tiny kernel. */
export function codebookStats(counts: Tensor): CodebookStats {
  assertDType('codebookStats', 'u32', counts);
  const perplexity = empty([]);
  const used = empty([]);
  rt().dispatch(shaderKernel('vq', 'stats', {}, STATS_PARAMS), [counts.buffer, perplexity.buffer, used.buffer], STATS_PARAMS.pack({ k: counts.size }), [1]);
  return { perplexity, used };
}

/**
 * Distinct codes used over a window of batches (or over everything since reset(), e.g. an
 * evaluation pass). Keeps, per code, the number of the last batch that used it, on the GPU.
 */
export class CodeUsage {
  /** Batches recorded since construction or reset(). */
  step = 0;
  private seen: Tensor;

  /** `window`: default number of most recent batches counted by used() (Infinity: all). */
  constructor(
    readonly k: number,
    readonly window = Infinity,
  ) {
    if (!Number.isInteger(k) || k < 1) throw new Error(`CodeUsage: the number of codes must be a positive integer, got ${k}`);
    if (!(window >= 1)) throw new Error(`CodeUsage: the window must be at least 1 batch, got ${window}`);
    this.seen = keep(zeros([k], 'u32'));
  }

  /** Records one batch, given its per-code counts (u32 [K]). */
  update(counts: Tensor): void {
    assertDType('CodeUsage.update', 'u32', counts);
    if (counts.size !== this.k) throw new Error(`CodeUsage.update: counts has ${counts.size} codes, expected ${this.k}`);
    if (this.step >= 0xfffffffe) throw new Error('CodeUsage: too many batches; call reset()');
    this.step++;
    const mark = shaderKernel('vq', 'usage_mark', {}, USAGE_MARK_PARAMS);
    rt().dispatch(mark, [counts.buffer, this.seen.buffer], USAGE_MARK_PARAMS.pack({ k: this.k, step: this.step }), grid1d(Math.ceil(this.k / 64)));
  }

  /** []: number of codes used in the last `window` recorded batches (as f32). */
  used(window = this.window): Tensor {
    if (!(window >= 1)) throw new Error(`CodeUsage.used: the window must be at least 1 batch, got ${window}`);
    const w = Number.isFinite(window) ? Math.min(window, 0xffffffff) : 0xffffffff;
    const out = empty([]);
    const count = shaderKernel('vq', 'usage_count', {}, USAGE_COUNT_PARAMS);
    rt().dispatch(count, [this.seen.buffer, out.buffer], USAGE_COUNT_PARAMS.pack({ k: this.k, step: this.step, window: w }), [1]);
    return out;
  }

  /** Forgets every batch (e.g. at the start of an evaluation pass). */
  reset(): void {
    dispatchFill(this.seen, 0);
    this.step = 0;
  }

  dispose(): void {
    this.seen.dispose();
  }
}
