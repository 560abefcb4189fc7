// Batched matrix multiply with autograd, on shaders/matmul.wgsl.
//
// One tiled GEMM template (tfjs style): a schedule holds the tiles and the K loop and reaches
// memory only through hook functions (mm_readA / mm_readB4 / mm_write4, see the top of the
// .wgsl). Two schedules, chosen per device:
//   reg   register tiles, no workgroup memory or barriers. On lavapipe every storage-buffer load
//         is a per-lane loop of branches while arithmetic is vectorised, so what counts is loads
//         per FMA: a lane computes 32 rows x 8 columns and the subgroup shares the A values
//         through subgroupBroadcast (12 loads per 256 FMAs per k step).
//         Known cost: when K is a multiple of 256 the 32 A rows of a tile (4K bytes apart) share
//         a few L1 sets, so A read transposed is faster there (bench: matmul 1024^3, 2048^3).
//   smem  64x64 workgroup-memory tiles, 4x4 per thread: the usual choice on a discrete GPU. The
//         tile itself (shaders/gemm_tile.wgsl, engine/gemm_tile.ts) is shared with conv and the
//         nearest-code search; matmul's smem section supplies its loaders and epilogue.
// Which schedule and tile run a product is a plan (planMatmul: pure, from the shape, the
// device's capabilities and the flags); runGemm only records what the plan says. Override with
// the `schedule` option or VQ_MATMUL_SCHEDULE=reg|smem (VQ_MATMUL_SUBGROUPS=0 turns the subgroup
// sharing of `reg` off).
import { needsGrad, record } from './autograd.js';
import { reluGradFromOutput } from './elementwise.js';
import type { Capabilities } from './device.js';
import { type Flags, flags } from './flags.js';
import { fmaChain, shared } from './emit_tile.js';
import { withGemmTile } from './gemm_tile.js';
import { kernel, paramBlock, shaderKernel } from './kernel.js';
import { type Grid, rt } from './runtime.js';
import { wgslKernel } from './shaders.js';
import { tunedPlan } from './autotune.js';
import { MATMUL_TUNING, matmulShapeOf } from './candidates.js';
import { Tensor, assertDType, empty } from './tensor.js';

export type MatmulSchedule = 'reg' | 'smem';
export type MatmulActivation = 'relu';

export interface MatmulOptions {
  /** Read `a` transposed: a is [..., K, M]. */
  transA?: boolean;
  /** Read `b` transposed: b is [..., N, K]. */
  transB?: boolean;
  /** [N], added to every output row in the kernel's epilogue. */
  bias?: Tensor | null;
  /** Applied after the bias, in the epilogue. */
  activation?: MatmulActivation | null;
  /** Force a schedule (default: per device, or VQ_MATMUL_SCHEDULE). */
  schedule?: MatmulSchedule;
}

/** How a schedule is specialised: `reg` tile sizes and whether A is shared through subgroups. */
export interface GemmTile {
  schedule: MatmulSchedule;
  /** Output rows per workgroup (reg: a multiple of 8; smem: 64). */
  tm: number;
  /** Output columns per lane (reg: a multiple of 4); a reg workgroup covers 8 * tn columns. */
  tn: number;
  /** reg: load A once per subgroup lane and subgroupBroadcast it (needs subgroups of >= 8). */
  shareA: boolean;
}

/** The capabilities matmul plans read. */
export type MatmulCaps = Pick<Capabilities, 'isCpu' | 'subgroups' | 'subgroupMinSize'>;

/** The flags matmul plans read. */
export type MatmulFlags = Pick<Flags, 'matmulSchedule' | 'matmulSubgroups' | 'matmulTile'>;

/** The schedule: `override`, else flag matmulSchedule, else reg on a CPU device, smem on a GPU. */
export function planMatmulSchedule(caps: MatmulCaps, f: MatmulFlags, override?: MatmulSchedule): MatmulSchedule {
  return override ?? (f.matmulSchedule !== 'auto' ? f.matmulSchedule : caps.isCpu ? 'reg' : 'smem');
}

/** The tile configuration of `schedule` on a device with `caps`. */
export function planGemmTile(schedule: MatmulSchedule, caps: MatmulCaps, f: MatmulFlags): GemmTile {
  if (schedule === 'smem') return { schedule, tm: 64, tn: 4, shareA: false };
  const shareA = caps.subgroups && caps.subgroupMinSize >= 8 && f.matmulSubgroups;
  // Flag matmulTile (VQ_MATMUL_TILE=ROWSxCOLS) overrides the tile (for benchmarks of other variants).
  const m = /^(\d+)x(\d+)$/.exec(f.matmulTile);
  if (m) return { schedule, tm: Number(m[1]), tn: Number(m[2]), shareA };
  // 32x8 with sharing: as fast as 16x8 or 24x8 on square products and the fastest on the VQ
  // distance shape (bench: matmul vq-distance); without sharing every row costs a load, so 8 rows.
  return shareA ? { schedule, tm: 32, tn: 8, shareA } : { schedule, tm: 8, tn: 8, shareA };
}

/** The schedule matmul uses on this device now (planMatmulSchedule with the device's caps and the flags in force). */
export function matmulSchedule(override?: MatmulSchedule): MatmulSchedule {
  return planMatmulSchedule(rt().caps, flags(), override);
}

/** The tile configuration of `schedule` on this device now. */
export function gemmTile(schedule: MatmulSchedule = matmulSchedule()): GemmTile {
  return planGemmTile(schedule, rt().caps, flags());
}

/** Workgroups for an M x N output with zOut batches. */
export function gemmGrid(tile: GemmTile, M: number, N: number, zOut: number): Grid {
  const cols = tile.schedule === 'smem' ? 64 : 8 * tile.tn;
  return [Math.ceil(N / cols), Math.ceil(M / tile.tm), zOut];
}

/** The `reg` schedule's placeholders: the unrolled k step (loads, broadcasts, FMAs). */
function regTileCode(tile: GemmTile): Record<string, string> {
  const { tm, tn, shareA } = tile;
  if (tm % 8 !== 0 || tn % 4 !== 0) throw new Error(`gemm reg tile ${tm}x${tn}: rows must be a multiple of 8, columns of 4`);
  const cols = tn / 4;
  const pad = '      ';
  const step: string[] = [];
  for (let j = 0; j < cols; j++) step.push(`${pad}let b${j} = mm_readB4(bBase, k, n0 + ${32 * j}u);`);
  if (shareA) {
    // lane l loads row 8g + l of each group g; broadcast(i) hands row 8g + i to every lane
    for (let g = 0; g < tm / 8; g++) step.push(`${pad}let a${g} = mm_readA(aBase, row0 + ${8 * g}u + sgLane, k);`);
  }
  for (let i = 0; i < tm; i++) {
    const a = shareA ? shared((n) => `a${n}`, i) : `mm_readA(aBase, row0 + ${i}u, k)`;
    const fmas = Array.from({ length: cols }, (_, j) => fmaChain(`acc[${i * cols + j}]`, [['a', `b${j}`]]));
    step.push(`${pad}{ let a = vec4<f32>(${a}); ${fmas.join(' ')} }`);
  }
  return {
    TM: String(tm),
    TN: String(tn),
    TN4: String(cols),
    TN8: String(8 * tn),
    TM_TN4: String(tm * cols),
    SG_BUILTIN: shareA ? ', @builtin(subgroup_invocation_id) sgLane: u32' : '',
    REG_STEP: step.join('\n'),
  };
}

/**
 * A complete GEMM module: `hooks` (WGSL defining the uniform `p` and the mm_* hooks, see
 * shaders/matmul.wgsl) followed by the schedule's entry point `main`.
 */
export function gemmSource(tile: GemmTile, hooks: string): string {
  const enable = tile.shareA && tile.schedule === 'reg' ? 'enable subgroups;\n' : '';
  if (tile.schedule === 'smem') return withGemmTile(hooks + '\n' + wgslKernel('matmul', 'smem'));
  return enable + hooks + '\n' + wgslKernel('matmul', 'reg', regTileCode(tile));
}

/** A kernel's cache-key fragment for `tile`. */
export function gemmTileKey(tile: GemmTile): string {
  return tile.schedule === 'reg' ? `reg${tile.tm}x${tile.tn}${tile.shareA ? 'sg' : ''}` : 'smem64';
}

// ---- matmul's own hooks: strided row-major matrices, batches, transposes, bias + relu.

/** How matmul's hooks load B and store the output; everything else is a uniform. */
export type MemoryMode = 'b4o4' | 'b1o4' | 'b1o1';

/** Which kernel runs one GEMM and on which grid. */
export interface MatmulPlan {
  tile: GemmTile;
  mode: MemoryMode;
  grid: Grid;
}

/**
 * The plan of an M x N (x K) product with zOut output batches (transB: B is read transposed),
 * pure: (shape, device capabilities, flags) -> plan. `schedule` forces a schedule.
 */
export function planMatmul(
  s: { M: number; N: number; K: number; zOut?: number; transB?: boolean },
  caps: MatmulCaps,
  f: MatmulFlags,
  schedule?: MatmulSchedule,
): MatmulPlan {
  const tile = planGemmTile(planMatmulSchedule(caps, f, schedule), caps, f);
  // B loads and output stores are vec4s when rows hold whole vec4s (B read transposed: scalar loads).
  const mode: MemoryMode = s.N % 4 !== 0 ? 'b1o1' : s.transB ? 'b1o4' : 'b4o4';
  const grid = gemmGrid(tile, s.M, s.N, s.zOut ?? 1);
  if ((grid[1] ?? 1) > 65535) {
    throw new Error(`matmul: M = ${s.M} needs ${grid[1]} workgroup rows (more than 65535); split the batch`);
  }
  return { tile, mode, grid };
}

/** One line naming a matmul plan's kernel, e.g. `reg 32x8 sg b1o4`. */
export function describeMatmulPlan(p: MatmulPlan): string {
  const t = p.tile;
  return t.schedule === 'reg' ? `reg ${t.tm}x${t.tn}${t.shareA ? ' sg' : ''} ${p.mode}` : `smem 64x64 ${p.mode}`;
}

/**
 * matmul_hooks' uniform: A has aCount batches of aStride elements (batch z reads z % aCount), B
 * likewise; aRow, aK: element strides of opA's rows and k; bK, bCol: those of opB's k and columns.
 */
const MATMUL_PARAMS = paramBlock({
  M: 'u32', N: 'u32', K: 'u32', zOut: 'u32',
  nRed: 'u32', aCount: 'u32', aStride: 'u32', bCount: 'u32',
  bStride: 'u32', aRow: 'u32', aK: 'u32', bK: 'u32',
  bCol: 'u32', hasBias: 'u32', relu: 'u32', _p: 'u32',
}, 4);

function matmulHooks(mode: MemoryMode): string {
  const bVec4 = mode === 'b4o4';
  const oVec4 = mode !== 'b1o1';
  return wgslKernel('matmul', 'matmul_hooks', {
    PARAMS: MATMUL_PARAMS.wgsl,
    B_TYPE: bVec4 ? 'vec4<f32>' : 'f32',
    O_TYPE: oVec4 ? 'vec4<f32>' : 'f32',
    B_READ4: bVec4
      ? 'return B[(base + k * p.N + min(n, p.N - 4u)) / 4u];'
      : 'let i = base + k * p.bK;\n  let l = p.N - 1u;\n' +
        '  return vec4<f32>(B[i + min(n, l) * p.bCol], B[i + min(n + 1u, l) * p.bCol],\n' +
        '                   B[i + min(n + 2u, l) * p.bCol], B[i + min(n + 3u, l) * p.bCol]);',
    WRITE4: oVec4
      ? 'if (n < p.N) { O[i / 4u] = r; }'
      : 'if (n < p.N) { O[i] = r.x; }\n  if (n + 1u < p.N) { O[i + 1u] = r.y; }\n' +
        '  if (n + 2u < p.N) { O[i + 2u] = r.z; }\n  if (n + 3u < p.N) { O[i + 3u] = r.w; }',
  });
}

/** One GEMM launch over contiguous tensors; see `launchGemm`. */
export interface GemmLaunch {
  /** A-role operand: batches of [M, K] (or [K, M] with transA). */
  a: Tensor;
  /** B-role operand: batches of [K, N] (or [N, K] with transB). */
  b: Tensor;
  /** Output: zOut batches of [M, N]. */
  out: Tensor;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  activation?: MatmulActivation | null;
  /** Output batches (default 1). */
  zOut?: number;
  /** Input batches summed into each output batch (default 1): input batch z = zo + j * zOut. */
  nRed?: number;
  /** Batches held by a / b (default 1); input batch z reads batch z % count (1 = broadcast). */
  aCount?: number;
  bCount?: number;
  schedule?: MatmulSchedule;
}

/**
 * Records one GEMM: out[zo] = act(sum_j opA(a[z % aCount]) @ opB(b[z % bCount]) + bias) with
 * z = zo + j * zOut. Covers batched, broadcast (suffix batch dims) and batch-reducing products.
 * Plans with the device's capabilities and the flags in force, then runs the plan.
 */
export function launchGemm(g: GemmLaunch): void {
  const { a, b, out, M, N, K } = g;
  const zOut = g.zOut ?? 1;
  const short = (t: Tensor, need: number, what: string) => {
    if (t.size < need) throw new Error(`launchGemm: ${what} ${t.describe()} holds ${t.size} elements, needs ${need}`);
  };
  short(a, (g.aCount ?? 1) * M * K, 'a');
  short(b, (g.bCount ?? 1) * K * N, 'b');
  short(out, zOut * M * N, 'out');
  if (g.bias) short(g.bias, N, 'bias');
  if (M === 0 || N === 0 || zOut === 0) return;
  // A forced schedule wins; else the tuned plan where flag autotune asks for one.
  const rule = () => planMatmul({ M, N, K, zOut, transB: g.transB }, rt().caps, flags(), g.schedule);
  runGemm(g, g.schedule ? rule() : tunedPlan(MATMUL_TUNING, matmulShapeOf(g), rule));
}

/** Records the GEMM `g` as `plan` says (checked by launchGemm). */
export function runGemm(g: GemmLaunch, plan: MatmulPlan): void {
  const { a, b, out, M, N, K } = g;
  const zOut = g.zOut ?? 1;
  const nRed = g.nRed ?? 1;
  const aCount = g.aCount ?? 1;
  const bCount = g.bCount ?? 1;
  const transA = !!g.transA;
  const transB = !!g.transB;
  const { tile, mode } = plan;
  const k = kernel(`matmul.${tile.schedule}`, { ...tile, mode }, () => gemmSource(tile, matmulHooks(mode)));
  const params = MATMUL_PARAMS.pack({
    M, N, K, zOut, nRed, aCount, aStride: M * K, bCount, bStride: K * N,
    aRow: transA ? 1 : K, aK: transA ? M : 1, bK: transB ? 1 : N, bCol: transB ? K : 1,
    hasBias: !!g.bias, relu: g.activation === 'relu',
  });
  const buffers = [a.buffer, b.buffer, (g.bias ?? b).buffer, out.buffer];
  rt().dispatch(k, buffers, params, plan.grid);
}

// ---- shapes

const fmt = (s: readonly number[]) => `[${s.join(',')}]`;
const prod = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

function stripOnes(s: readonly number[]): readonly number[] {
  let i = 0;
  while (i < s.length && s[i] === 1) i++;
  return s.slice(i);
}

interface MatmulShape {
  M: number;
  N: number;
  K: number;
  aCount: number;
  bCount: number;
  total: number;
  outShape: number[];
}

function matmulShape(a: readonly number[], b: readonly number[], transA: boolean, transB: boolean): MatmulShape {
  if (a.length < 2 || b.length < 2) {
    throw new Error(`matmul: operands need at least 2 dimensions, got shapes ${fmt(a)} and ${fmt(b)}`);
  }
  const [ar, ac] = a.slice(-2);
  const [br, bc] = b.slice(-2);
  const [M, Ka] = transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = transB ? [bc, br] : [br, bc];
  if (Ka !== Kb) {
    const t = (x: boolean) => (x ? ' (transposed)' : '');
    throw new Error(`matmul: inner dimensions of shapes ${fmt(a)}${t(transA)} and ${fmt(b)}${t(transB)} do not match (${Ka} vs ${Kb})`);
  }
  const ab = a.slice(0, -2);
  const bb = b.slice(0, -2);
  // numpy broadcasting of the batch dims
  const n = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = ab[ab.length - n + i] ?? 1;
    const y = bb[bb.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new Error(`matmul: batch dimensions of shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    }
    batch.push(Math.max(x, y));
  }
  // the kernel addresses a broadcast operand as batch z % count: its batch dims (without leading
  // ones) must be the trailing batch dims of the result
  const full = stripOnes(batch);
  for (const s of [ab, bb]) {
    const t = stripOnes(s);
    if (t.join() !== full.slice(full.length - t.length).join()) {
      throw new Error(
        `matmul: batch dimensions of shapes ${fmt(a)} and ${fmt(b)} broadcast in a way matmul does not support ` +
          '(each operand\'s batch dims must equal the trailing batch dims of the other, or be absent)',
      );
    }
  }
  return { M, N, K: Ka, aCount: prod(ab), bCount: prod(bb), total: prod(batch), outShape: [...batch, M, N] };
}

// ---- the op

/**
 * a [..., M, K] @ b [..., K, N] -> [..., M, N] (transA / transB read an operand transposed,
 * without a transpose pass). Batch dims broadcast numpy-style where one operand's batch dims are
 * the trailing batch dims of the other (equal, or one side 2-D). Optional fused epilogue:
 * + bias [N], then relu. Differentiable in a, b and bias.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const bias = opts.bias ?? null;
  const activation = opts.activation ?? null;
  if (activation !== null && activation !== 'relu') throw new Error(`matmul: unknown activation '${activation}'`);
  assertDType('matmul', 'f32', a, b, ...(bias ? [bias] : []));
  const s = matmulShape(a.shape, b.shape, transA, transB);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== s.N)) {
    throw new Error(`matmul: bias shape ${fmt(bias.shape)} does not match the N = ${s.N} columns of ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  }
  const out = empty(s.outShape);
  launchGemm({
    a, b, out, bias, activation, transA, transB, schedule: opts.schedule,
    M: s.M, N: s.N, K: s.K, zOut: s.total, aCount: s.aCount, bCount: s.bCount,
  });
  const inputs = bias ? [a, b, bias] : [a, b];
  if (!needsGrad(...inputs)) return out;
  const wantA = a.requiresGrad;
  const wantB = b.requiresGrad;
  const wantBias = !!bias?.requiresGrad;
  const aShape = a.shape;
  const bShape = b.shape;
  const schedule = opts.schedule;
  const save = activation === 'relu' ? [a, b, out] : [a, b];
  return record(out, 'matmul', inputs, save, (grad, saved) => {
    const [sa, sb, y] = saved;
    // gradient at the epilogue's input
    const gz = activation === 'relu' ? reluGradFromOutput(grad, y) : grad;
    const { M, N, K, aCount, bCount, total } = s;
    // the gradient of an operand with `count` batches: output batch zo sums the products of the
    // input batches zo, zo + count, ... (the batches it was broadcast to)
    const grad2 = (
      ga: Tensor, gb: Tensor, tA: boolean, tB: boolean, rows: number, cols: number, inner: number,
      gaCount: number, gbCount: number, count: number, outShape: readonly number[],
    ): Tensor => {
      const o = empty(outShape);
      launchGemm({
        a: ga, b: gb, out: o, M: rows, N: cols, K: inner, transA: tA, transB: tB, schedule,
        zOut: count, nRed: total / count, aCount: gaCount, bCount: gbCount,
      });
      return o;
    };
    let dA: Tensor | null = null;
    let dB: Tensor | null = null;
    if (wantA) {
      // dOpA = G opB^T; dA = dOpA, or its transpose when a was read transposed
      if (!transA) dA = grad2(gz, sb, false, !transB, M, K, N, total, bCount, aCount, aShape);
      else dA = grad2(sb, gz, transB, true, K, M, N, bCount, total, aCount, aShape);
    }
    if (wantB) {
      // dOpB = opA^T G; dB = dOpB, or its transpose when b was read transposed
      if (!transB) dB = grad2(sa, gz, !transA, false, K, N, M, aCount, total, bCount, bShape);
      else dB = grad2(gz, sa, true, transA, N, K, M, total, aCount, bCount, bShape);
    }
    const dBias = wantBias ? sumRows(gz, total * M, N) : null;
    if (gz !== grad) gz.dispose();
    return bias ? [dA, dB, dBias] : [dA, dB];
  });
}

// ---- backward helpers

/** rows of N columns, summed in chunks of `chunk` rows. */
const COLSUM_PARAMS = paramBlock({ rows: 'u32', N: 'u32', chunk: 'u32', _p: 'u32' });
const colsumKernel = shaderKernel('matmul', 'colsum', {}, COLSUM_PARAMS);
const COLSUM_CHUNK = 256;

/** Sums the rows of x viewed as [rows, n] into a fresh [n] tensor (a few partial-sum passes). */
export function sumRows(x: Tensor, rows: number, n: number): Tensor {
  if (rows * n !== x.size) throw new Error(`sumRows: ${x.describe()} is not [${rows}, ${n}]`);
  let cur = x;
  let curRows = rows;
  do {
    const chunks = Math.max(1, Math.ceil(curRows / COLSUM_CHUNK));
    const next = empty(chunks === 1 ? [n] : [chunks, n]);
    if (n > 0) {
      rt().dispatch(colsumKernel, [cur.buffer, next.buffer], COLSUM_PARAMS.pack({ rows: curRows, N: n, chunk: COLSUM_CHUNK }), [Math.ceil(n / 64), chunks, 1]);
    }
    if (cur !== x) cur.dispose();
    cur = next;
    curRows = chunks;
  } while (curRows > 1);
  return cur;
}
