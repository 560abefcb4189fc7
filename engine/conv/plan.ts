// Conv plans: which kernel variant runs a pass, and its tile settings, as data. Each function
// here is pure, (pass shape, device capabilities, flags) -> plan, with no GPU and no rt(): the
// launchers (./launch.ts) take a plan and only do what it says, and test/plans.test.ts asserts
// the plan of every seed layer for CPU-like and GPU-like devices. `describeConvPlan` gives the
// one-line form the bench prints.
import type { Capabilities } from '../device.js';
import type { Flags } from '../flags.js';
import { bucketSize } from '../pool.js';
import { uniformVec4s } from '../runtime.js';
import { vec4TextureFits } from '../texture_plan.js';
import { type ConvGeom, type ConvPass, type WgradPass, forwardConvPass, transposedPasses, wgradPass } from './geometry.js';

export { uniformVec4s };

export type ConvSchedule = 'reg' | 'smem';

/**
 * The element type of a pass's activations in memory (inputs, outputs, upstream gradients and
 * conv weights): f16 kernels load it converted to f32, accumulate in f32 and store f16
 * activations; weight and bias gradients are f32 either way.
 */
export type ConvStorage = 'f32' | 'f16';

/** The capabilities conv plans read. */
export type ConvCaps = Pick<Capabilities,
  'isCpu' | 'subgroups' | 'subgroupMinSize' | 'subgroupMaxSize' | 'hostThreads' | 'maxUniformBufferBindingSize' |
  'readonlyStorageTextures' | 'maxTextureDimension2D'>;

/** The flags conv plans read. */
export type ConvFlags = Pick<Flags, 'convSchedule' | 'convRepack1x1' | 'convUniformWeights' | 'convWgradTextures' | 'convWgradRows' | 'convBroadcast'>;

const mod4 = (v: number) => ((v % 4) + 4) % 4;

/**
 * Whether the reg kernels can hand values from lane to lane with subgroupBroadcast: their
 * workgroup of 8 must be one subgroup. Without that (SwiftShader's subgroups of 4, no
 * subgroups) each lane of the reg kernels loads every row's weights (conv) or rows of A
 * (weight gradients) itself.
 */
export function regBroadcast(caps: ConvCaps, f: Pick<Flags, 'convBroadcast'>): boolean {
  return caps.subgroups && caps.subgroupMinSize >= 8 && f.convBroadcast;
}

/**
 * The schedule of the conv kernels: flag convSchedule, else 'reg' on CPU devices, whose
 * barriers are costly (a workgroup's lanes run on one thread), and 'smem' on GPUs.
 */
export function planConvSchedule(caps: ConvCaps, f: ConvFlags): ConvSchedule {
  if (f.convSchedule !== 'auto') return f.convSchedule;
  return caps.isCpu ? 'reg' : 'smem';
}

// ---------------------------------------------------------------------------------------------
// Conv-kernel passes (forward-type and transposed-type)

/** The reg conv kernel's specialisation (its cache key is derived from these values). */
export interface RegConv {
  R: number;
  /** Adjacent positions per lane (4, 8 or 16): more reuses each weight load for more FMAs. */
  PJ: number;
  /** 'tap': a weight vec4 holds four taps of a kernel row; 'chan': four input channels. */
  mode: 'tap' | 'chan';
  TX: number;
  SX: number;
  DIR: 1 | -1;
  /** Input rows hold whole vec4s (IW % 4 == 0): aligned chunks of the window load as vec4. */
  vecX: boolean;
  /** OFFX mod 4 when vecX (fixes which window offsets start an aligned vec4), else 0. */
  ax: number;
  /** chan mode with KIN % 4 != 0: guard the channels past KIN. */
  kinTail: boolean;
  /** Output rows hold whole vec4s and the lane's 4 positions are adjacent and aligned. */
  vecY: boolean;
  /** vec4s of the uniform array the weights bind as (a power of two), or 0: storage. */
  uniformW: number;
  /**
   * chan mode, 1x1 kernel with kin-major weights [KIN, ROWS] (conv's input gradient): read the
   * weight tensor as it is, a vec4 holding four rows of one input channel, instead of repacking.
   */
  rowVec4: boolean;
  /** Weights reach the lanes by subgroupBroadcast (regBroadcast); else each lane loads them all. */
  bcast: boolean;
  /** X and Y's element type (the packed weights are f32 either way). */
  storage: ConvStorage;
}

/** How a reg pass gets its weights: repacked, the tensor as it is, or none (a phase no tap reaches). */
export type WeightSource = 'pack' | 'as-is' | 'none';

export type ConvPassPlan =
  | { kind: 'smem'; pass: ConvPass; DIR: 1 | -1; storage: ConvStorage }
  | {
      kind: 'reg';
      pass: ConvPass;
      v: RegConv;
      weights: WeightSource;
      /** Rows padded to a multiple of R (packed weights and the grid). */
      rowsPadded: number;
      /** Taps per kernel row in packed weights (padded to vec4s in tap mode). */
      packTXP: number;
      /** Position groups of PJ per row, and all of them: the grid's x extent is NPOS / 8. */
      NG: number;
      NPOS: number;
      /** K steps: input channels (tap mode) or groups of four (chan mode). */
      ksteps: number;
      noTaps: boolean;
    };

/** Rows per subgroup for the reg kernels. */
export function regRows(rows: number): number {
  return rows > 8 ? 16 : rows > 4 ? 8 : 4;
}

/**
 * The plan of one conv-kernel pass. `sched` is the schedule asked for (planConvSchedule unless
 * a caller forces one); `weightBytes` the size of the weight tensor's buffer (default: the
 * pool's bucket for it); `storage` the element type of its activations and weights.
 */
export function planConvPass(pass: ConvPass, sched: ConvSchedule, caps: ConvCaps, f: ConvFlags, weightBytes?: number, storage: ConvStorage = 'f32'): ConvPassPlan {
  // Few output channels leave most of the smem tile's 64 rows idle: such passes (the first
  // conv's input gradient, the last convT) run the reg kernel on GPUs too (bench: conv.enc1.dgrad, convT.decT2.fwd).
  const bcast = regBroadcast(caps, f);
  if (sched === 'smem' && pass.ROWS <= 8 && f.convSchedule === 'auto' && bcast) sched = 'reg';
  if (sched === 'smem') return { kind: 'smem', pass, DIR: pass.DIR, storage };
  const chan = pass.TX === 1;
  // A 1x1 pass (chan mode) uses each input load for R rows only (no taps to share it): 32 rows.
  const R = chan && pass.ROWS > 16 ? 32 : regRows(pass.ROWS);
  // Positions per lane: more reuse each weight load. On a CPU 16 for wide rows, but 4 for 1x1
  // passes with broadcast weights (a longer body outgrows lavapipe's instruction cache; without
  // broadcast every lane loads the weights, and 16 positions share them); a GPU runs this kernel
  // only for passes with few rows and needs the lanes, so 8 (bench: conv.*.fwd, conv.*.dgrad).
  const cpu = caps.isCpu;
  const PJ = pass.QW <= 4 || (cpu && chan && bcast) ? 4 : cpu && pass.QW > 8 ? 16 : 8;
  const vecX = pass.IW % 4 === 0;
  const kinTail = chan && pass.KIN % 4 !== 0;
  const rowsPadded = Math.ceil(pass.ROWS / R) * R;
  // A phase of a strided pass that no tap reaches (KY0 = KH or KX0 = KW, see phasePasses) only
  // writes its outputs (bias or zero): no iterations, no weights.
  const noTaps = pass.KY0 >= pass.KH || pass.KX0 >= pass.KW;
  // A 1x1 kernel's weights need no repack (a dispatch saved): [ROWS, KIN] is the packed layout
  // when no row or channel needs padding, and [KIN, ROWS] reads as row quads (rowVec4).
  const oneByOne = chan && pass.KH === 1 && pass.KW === 1 && !noTaps && !f.convRepack1x1;
  const asPacked = oneByOne && !pass.kinMajor && rowsPadded === pass.ROWS && !kinTail;
  const rowVec4 = oneByOne && pass.kinMajor && pass.ROWS % 4 === 0 && R >= 8;
  // f16 weights are always repacked: the pack converts them to the f32 the kernel reads.
  const weights: WeightSource = noTaps ? 'none' : (asPacked || rowVec4) && storage === 'f32' ? 'as-is' : 'pack';
  const packTXP = chan ? pass.TX : 4 * Math.ceil(pass.TX / 4);
  // CPU devices read weights that fit a uniform binding from one: a uniform load is one gather
  // for all lanes, a storage load one per lane (bench: conv.res1x1.fwd, conv.prevq.dgrad).
  let uniformW = 0;
  if (cpu && f.convUniformWeights) {
    const wFloats = pass.ROWS * pass.KIN * pass.KH * pass.KW;
    const floats = weights === 'pack' ? rowsPadded * (chan ? Math.ceil(pass.KIN / 4) * 4 : pass.KIN) * pass.TY * packTXP : wFloats;
    const bytes = weights === 'pack' ? bucketSize(4 * floats) : weightBytes ?? bucketSize(4 * wFloats);
    uniformW = uniformVec4s(caps, floats, bytes);
  }
  const v: RegConv = {
    R, PJ, mode: chan ? 'chan' : 'tap', TX: pass.TX, SX: pass.SX, DIR: pass.DIR, vecX, ax: vecX ? mod4(pass.OFFX) : 0, kinTail,
    vecY: pass.OSX === 1 && pass.OPX === 0 && pass.OW % 4 === 0 && pass.QW === pass.OW, uniformW, rowVec4: rowVec4 && weights === 'as-is', bcast, storage,
  };
  const NG = Math.ceil(pass.QW / PJ);
  return {
    kind: 'reg', pass, v, weights, rowsPadded, packTXP, NG, NPOS: pass.B * pass.QH * NG,
    ksteps: chan ? Math.ceil(pass.KIN / 4) : pass.KIN, noTaps,
  };
}

// ---------------------------------------------------------------------------------------------
// Weight gradients

/** The general reg weight-gradient kernel's specialisation. */
export interface RegWgrad {
  R: number;
  G: number;
  /** Accumulator width: taps per group (TX when one group covers the kernel row, else 4). */
  T: number;
  /** Column groups per lane: each broadcast A value then feeds CPL * T accumulators. */
  CPL: number;
  SX: number;
  vecA: boolean;
  vecX: boolean;
  /** OFFX mod 4 when vecX, else 0. */
  ax: number;
  UQ: number;
  /** Read A4 and X4 through textures. */
  texA: boolean;
  texX: boolean;
  /** Rows of A reach the lanes by subgroupBroadcast (regBroadcast); else each lane loads them all. */
  bcast: boolean;
  /** A and X's element type (the partial sums and dW are f32 either way). */
  storage: ConvStorage;
}

/** The row-walking reg weight-gradient kernel's specialisation (stride-1 kernel rows). */
export interface RegWgradRows {
  R: number;
  /** Kernel rows (TY >= 2): column groups per lane, one per row, all of one input channel. */
  TY: number;
  /** Taps per kernel row (<= 4): the accumulator width. */
  T: number;
  SX: number;
  vecA: boolean;
  vecX: boolean;
  ax: number;
  texA: boolean;
  texX: boolean;
  bcast: boolean;
  storage: ConvStorage;
}

interface WgradCommon {
  pass: WgradPass;
  /** Tap groups of four per kernel row (the partial sums pad KW to 4 G taps). */
  G: number;
  /** Chunks of positions, summed in order by the wsum kernel, and iterations per chunk. */
  S: number;
  chunk: number;
}

export type WgradPlan =
  | (WgradCommon & { kind: 'smem'; NCOL: number; MTOT: number; storage: ConvStorage })
  | (WgradCommon & { kind: 'reg'; v: RegWgrad; NGI: number; NCG: number; KITERS: number; tiles: [number, number] })
  | (WgradCommon & { kind: 'rows'; v: RegWgradRows; NGI: number; NCG: number; KITERS: number; tiles: [number, number] });

/**
 * An operand goes through a texture when each of its vec4s is loaded about this many times:
 * the copy costs about as much as that many storage-buffer loads saved.
 */
const TEXTURE_MIN_LOADS = 4;

/**
 * Which vec4 operands (A when QW % 4 = 0, X when IW % 4 = 0) a reg weight gradient reads
 * through textures: on a CPU device a texel load is a gather for all lanes, a storage vec4 a
 * scalar load per lane and component; an operand qualifies when each of its vec4s is loaded
 * (loadsA, loadsX) at least TEXTURE_MIN_LOADS times (bench: conv.*.wgrad). Flag
 * convWgradTextures: '0' none; 'A', 'X', 'AX' force those. The textures are rgba32float copies
 * of the buffers, so f16 operands never take them.
 */
function wgradTextures(pass: WgradPass, caps: ConvCaps, f: ConvFlags, loadsA: number, loadsX: number, storage: ConvStorage): { texA: boolean; texX: boolean } {
  const env = f.convWgradTextures;
  const on = caps.isCpu && env !== '0' && storage === 'f32';
  const want = (name: string, loads: number) => (env === 'auto' ? loads >= TEXTURE_MIN_LOADS : env.includes(name));
  return {
    texA: on && pass.QW % 4 === 0 && want('A', loadsA) && vec4TextureFits(caps, (pass.B * pass.ROWS * pass.QH * pass.QW) / 4),
    texX: on && pass.IW % 4 === 0 && want('X', loadsX) && vec4TextureFits(caps, (pass.B * pass.KIN * pass.IH * pass.IW) / 4),
  };
}

/**
 * Positions per reg weight-gradient chunk, at most (about): the workgroups of one chunk and row
 * tile all read that chunk's rows of A, which then stay in the L2 cache (bench: conv.*.wgrad.b256).
 */
const WGRAD_CHUNK_POSITIONS = 4096;

/**
 * Workgroups a reg weight gradient is split into at least: on a CPU device eight per driver
 * thread keep the threads balanced with few partial sums; a GPU (reg forced there) gets 64.
 */
function wgradWorkgroupTarget(caps: ConvCaps): number {
  return caps.isCpu ? 8 * caps.hostThreads : 64;
}

/** Chunks of a reg weight gradient's KITERS iterations over `tiles` workgroups each. */
function regChunks(pass: WgradPass, caps: ConvCaps, KITERS: number, tiles: [number, number]): { S: number; chunk: number } {
  const positions = pass.B * pass.QH * pass.QW;
  const forThreads = Math.ceil(wgradWorkgroupTarget(caps) / (tiles[0] * tiles[1]));
  const S = Math.max(1, Math.min(KITERS, Math.max(forThreads, Math.round(positions / WGRAD_CHUNK_POSITIONS))));
  const chunk = Math.ceil(KITERS / S);
  return { S: Math.ceil(KITERS / chunk), chunk };
}

/** The plan of a weight gradient (`sched`, `storage`: as planConvPass's). */
export function planWgrad(pass: WgradPass, sched: ConvSchedule, caps: ConvCaps, f: ConvFlags, storage: ConvStorage = 'f32'): WgradPlan {
  const G = Math.ceil(pass.KW / 4);
  const vecA = pass.QW % 4 === 0;
  const vecX = pass.IW % 4 === 0;
  const ax = vecX ? mod4(pass.OFFX) : 0;
  const bcast = regBroadcast(caps, f);
  if (sched === 'smem') {
    const MTOT = pass.B * pass.QH * pass.QW;
    const NCOL = pass.KIN * pass.KH * pass.KW;
    const tiles = Math.ceil(pass.ROWS / 64) * Math.ceil(NCOL / 64);
    // Enough chunks to fill a GPU, each at least 256 positions deep.
    const S0 = Math.max(1, Math.min(Math.ceil(256 / tiles), Math.ceil(MTOT / 256)));
    const chunk = Math.ceil(MTOT / S0 / 16) * 16;
    return { kind: 'smem', pass, G, S: Math.ceil(MTOT / chunk), chunk, NCOL, MTOT, storage };
  }
  if (pass.SY === 1 && pass.KH >= 2 && pass.KW <= 4 && f.convWgradRows) {
    // Stride-1 kernel rows: each lane walks down the rows of one input channel, loading one new
    // input row per iteration (bench: conv.enc3.wgrad, conv.res3x3.wgrad, conv.dec1.wgrad).
    const R = regRows(pass.ROWS);
    const NGI = Math.ceil(pass.QW / 4);
    const tiles: [number, number] = [Math.ceil(pass.KIN / 8), Math.ceil(pass.ROWS / R)];
    // X through a texture only when forced: the ring loads each input row once per row tile.
    const v: RegWgradRows = { R, TY: pass.KH, T: pass.KW, SX: pass.SX, vecA, vecX, ax, ...wgradTextures(pass, caps, f, tiles[0], 0, storage), bcast, storage };
    const KITERS = pass.B * pass.QH * NGI;
    return { kind: 'rows', pass, G, v, NGI, NCG: pass.KIN * pass.KH, KITERS, tiles, ...regChunks(pass, caps, KITERS, tiles) };
  }
  const NG = Math.ceil(pass.QW / 4);
  const T = G === 1 ? pass.KW : 4;
  // One-tap rows (1x1 kernels) feed each input load to R rows only: 32 rows, as the 1x1 forward.
  const R = T === 1 && pass.ROWS > 16 ? 32 : regRows(pass.ROWS);
  const NCG = pass.KIN * pass.KH * G;
  // Column groups per lane: 2 (4 for one-tap groups), unless that leaves a quarter of the lanes
  // without columns (bench: conv.enc2.wgrad, conv.res1x1.wgrad).
  const usage = (c: number) => NCG / (Math.ceil(NCG / (8 * c)) * 8 * c);
  const CPL = [T === 1 ? 4 : 2, 1].find((c) => c === 1 || usage(c) >= 0.75)!;
  const UQ = 1;
  const tiles: [number, number] = [Math.ceil(NCG / (8 * CPL)), Math.ceil(pass.ROWS / R)];
  // Each lane loads the input rows of its kernel rows: about KH / SY loads per row of X.
  const v: RegWgrad = { R, G, T, CPL, SX: pass.SX, vecA, vecX, ax, UQ, ...wgradTextures(pass, caps, f, tiles[0], tiles[1] * Math.ceil(pass.KH / pass.SY), storage), bcast, storage };
  const NGI = NG / UQ;
  const KITERS = pass.B * pass.QH * NGI;
  return { kind: 'reg', pass, G, v, NGI, NCG, KITERS, tiles, ...regChunks(pass, caps, KITERS, tiles) };
}

// ---------------------------------------------------------------------------------------------
// Whole ops

export type ConvOpPass = 'fwd' | 'dgrad' | 'wgrad';

export type ConvOpPlan = { kind: 'conv'; passes: ConvPassPlan[] } | { kind: 'wgrad'; plan: WgradPlan };

/**
 * The plan of one pass of conv2d (transposed = false) or convTranspose2d with geometry `g`
 * (for convTranspose2d, the geometry of the conv it is the transpose of). `sched` defaults to
 * planConvSchedule.
 */
export function planConv(op: ConvOpPass, g: ConvGeom, transposed: boolean, caps: ConvCaps, f: ConvFlags, sched?: ConvSchedule, storage: ConvStorage = 'f32'): ConvOpPlan {
  const s = sched ?? planConvSchedule(caps, f);
  if (op === 'wgrad') return { kind: 'wgrad', plan: planWgrad(wgradPass(g), s, caps, f, storage) };
  const forwardType = (op === 'fwd') !== transposed;
  const passes = forwardType ? [forwardConvPass(g)] : transposedPasses(g);
  return { kind: 'conv', passes: passes.map((p) => planConvPass(p, s, caps, f, undefined, storage)) };
}

/** ' f16' for f16 storage, '' for f32 (the f32 descriptions predate storage). */
const storageSuffix = (s: ConvStorage) => (s === 'f16' ? ' f16' : '');

/** One line naming a pass plan's kernel and settings, e.g. `reg R16 PJ16 tap pack uw0`. */
export function describeConvPassPlan(p: ConvPassPlan): string {
  if (p.kind === 'smem') return `smem D${p.DIR}${storageSuffix(p.storage)}`;
  const v = p.v;
  const x = v.vecX ? `vx${v.ax}` : 'sx';
  return `reg R${v.R} PJ${v.PJ} ${v.mode} D${v.DIR} ${x}${v.kinTail ? ' kt' : ''}${v.vecY ? ' vy' : ''} w:${p.weights}${v.rowVec4 ? '4' : ''}${v.uniformW ? ` u${v.uniformW}` : ''}${v.bcast ? '' : ' nb'}${storageSuffix(v.storage)}`;
}

export function describeWgradPlan(p: WgradPlan): string {
  if (p.kind === 'smem') return `wsmem S${p.S}${storageSuffix(p.storage)}`;
  const v = p.v;
  const tex = v.texA || v.texX ? ` tex${v.texA ? 'A' : ''}${v.texX ? 'X' : ''}` : '';
  const shape = p.kind === 'rows' ? `R${v.R} TY${(v as RegWgradRows).TY}` : `R${v.R} CPL${(v as RegWgrad).CPL}`;
  return `${p.kind === 'rows' ? 'wrows' : 'wreg'} ${shape} T${v.T}${tex} S${p.S}${v.bcast ? '' : ' nb'}${storageSuffix(v.storage)}`;
}

/** One line for a whole op pass: its pass plans joined by ' + ' (identical phases counted). */
export function describeConvPlan(p: ConvOpPlan): string {
  if (p.kind === 'wgrad') return describeWgradPlan(p.plan);
  const counts = new Map<string, number>();
  for (const s of p.passes) {
    const d = describeConvPassPlan(s);
    counts.set(d, (counts.get(d) ?? 0) + 1);
  }
  return [...counts].map(([d, n]) => (n > 1 ? `${n}x ${d}` : d)).join(' + ');
}
