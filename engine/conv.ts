// conv2d and convTranspose2d with autograd, PyTorch layouts at the API (activations NCHW, conv
// weight [out, in, kh, kw], transposed-conv weight [in, out, kh, kw]) and NCHW inside too.
//
// Every pass is an implicit GEMM over shaders/conv.wgsl (see its header):
//   conv forward, convT input gradient  -> "conv" kernel, DIR = +1, one dispatch
//   conv input gradient, convT forward  -> "conv" kernel, DIR = -1, one dispatch per output phase
//                                          of the stride (only taps that reach that phase)
//   both weight gradients               -> "wgrad" kernel, split over position chunks, then wsum
//   both bias gradients                 -> bias_grad (a per-channel sum)
// Weights are repacked per call by the pack kernel (small next to activations).
//
// Schedules: 'reg' for CPU Vulkan devices (subgroup broadcast, no workgroup memory; see the
// shader header for why), 'smem' for GPUs, where passes with at most 8 output channels still
// use 'reg' (the 64-row tile would idle). VQ_CONV_SCHEDULE=reg|smem forces one everywhere.
import { flags } from './flags.js';
import { record } from './autograd.js';
import { VEC4_TEXTURE_WIDTH, grid1d, rt, uniformArrayVec4s, type Binding, type Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';
import { Tensor, assertDType, empty } from './tensor.js';

export type ConvPair = [number, number];

export interface Conv2dOptions {
  stride?: number | ConvPair;
  padding?: number | ConvPair;
  /** Fused into the output: y = relu(conv(x) + bias). */
  activation?: 'relu' | null;
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: number | ConvPair;
}

export type ConvSchedule = 'reg' | 'smem';

/** Whether this device can run the reg kernels: they broadcast within a workgroup of 8, which must be one subgroup. */
function regAvailable(): boolean {
  const caps = rt().caps;
  return caps.subgroups && caps.subgroupMinSize >= 8;
}

/** The schedule the conv kernels use now: flag convSchedule, else 'reg' on CPU devices. */
export function convSchedule(): ConvSchedule {
  const env = flags().convSchedule;
  const caps = rt().caps;
  const regOk = regAvailable();
  if (env === 'reg') {
    if (!regOk) {
      throw new Error(`VQ_CONV_SCHEDULE=reg needs the 'subgroups' feature with subgroups of at least 8 (this device: ${caps.subgroups ? `subgroup size ${caps.subgroupMinSize}-${caps.subgroupMaxSize}` : 'no subgroups'})`);
    }
    return 'reg';
  }
  if (env === 'smem') return 'smem';
  return caps.isCpu && regOk ? 'reg' : 'smem';
}

// ---------------------------------------------------------------------------------------------
// Geometry

/** A conv2d, or the conv whose input gradient a convTranspose2d computes. */
export interface ConvGeom {
  B: number;
  /** conv2d: in/out channels. convTranspose2d: the conv's, i.e. CI = convT output channels. */
  CI: number;
  CO: number;
  IH: number;
  IW: number;
  OH: number;
  OW: number;
  KH: number;
  KW: number;
  sy: number;
  sx: number;
  py: number;
  px: number;
}

/** One "conv"-kernel GEMM: out[b, row, o(q)] = sum Wp[row, kin, ty, tx] * X[b, kin, i(q, ty, tx)]. */
interface ConvPass {
  B: number;
  KIN: number;
  IH: number;
  IW: number;
  ROWS: number;
  QH: number;
  QW: number;
  TY: number;
  TX: number;
  SY: number;
  SX: number;
  DIR: 1 | -1;
  OFFY: number;
  OFFX: number;
  OH: number;
  OW: number;
  OSY: number;
  OSX: number;
  OPY: number;
  OPX: number;
  // weight source: [ROWS, KIN, KH, KW] (kinMajor false) or [KIN, ROWS, KH, KW]; tap (ty, tx) is
  // weight element (KY0 + TSY * ty, KX0 + TSX * tx)
  kinMajor: boolean;
  KH: number;
  KW: number;
  KY0: number;
  KX0: number;
  TSY: number;
  TSX: number;
}

/** Forward-type pass (DIR +1): output position o reads input o * s - p + k. */
function forwardPass(B: number, KIN: number, IH: number, IW: number, ROWS: number, OH: number, OW: number,
  KH: number, KW: number, sy: number, sx: number, py: number, px: number, kinMajor: boolean): ConvPass {
  return {
    B, KIN, IH, IW, ROWS, QH: OH, QW: OW, TY: KH, TX: KW, SY: sy, SX: sx, DIR: 1, OFFY: -py, OFFX: -px,
    OH, OW, OSY: 1, OSX: 1, OPY: 0, OPX: 0, kinMajor, KH, KW, KY0: 0, KX0: 0, TSY: 1, TSX: 1,
  };
}

/**
 * Transposed-type passes (DIR -1), one per output phase (ph_y, ph_x) of the stride: output
 * o = q * s + ph receives input i = (o + p - k) / s for the taps k = k0 + s * t with
 * k0 = (ph + p) mod s only, i.e. i = q + c - t with c = (ph + p - k0) / s.
 */
function phasePasses(B: number, KIN: number, IH: number, IW: number, ROWS: number, OH: number, OW: number,
  KH: number, KW: number, sy: number, sx: number, py: number, px: number, kinMajor: boolean): ConvPass[] {
  const passes: ConvPass[] = [];
  const phase = (ph: number, s: number, p: number, K: number, O: number) => {
    const Q = O > ph ? Math.ceil((O - ph) / s) : 0;
    const k0 = (ph + p) % s;
    const T = k0 < K ? Math.ceil((K - k0) / s) : 0;
    return { Q, k0, T, c: (ph + p - k0) / s };
  };
  for (let phy = 0; phy < sy; phy++) {
    for (let phx = 0; phx < sx; phx++) {
      const y = phase(phy, sy, py, KH, OH);
      const x = phase(phx, sx, px, KW, OW);
      if (y.Q === 0 || x.Q === 0) continue;
      // A phase no tap reaches still gets its outputs (bias or zero): one tap, out of range,
      // so the packed weights are all zero.
      const none = y.T === 0 || x.T === 0;
      passes.push({
        B, KIN, IH, IW, ROWS, QH: y.Q, QW: x.Q, TY: none ? 1 : y.T, TX: none ? 1 : x.T, SY: 1, SX: 1, DIR: -1,
        OFFY: y.c, OFFX: x.c, OH, OW, OSY: sy, OSX: sx, OPY: phy, OPX: phx, kinMajor, KH, KW,
        KY0: none ? KH : y.k0, KX0: none ? KW : x.k0, TSY: sy, TSX: sx,
      });
    }
  }
  return passes;
}

// ---------------------------------------------------------------------------------------------
// Kernels

const kernels = new Map<string, Kernel>();
function kernelFor(name: string, key: string, code: () => string): Kernel {
  let k = kernels.get(key);
  if (!k) {
    k = { name, key, code };
    kernels.set(key, k);
  }
  return k;
}

const fixedKernel = (section: string) => kernelFor(`conv.${section}`, `conv.${section}`, () => wgslKernel('conv', section, { ENABLE: '' }));

/**
 * Bindings in order (a type starting with 'uniform ' binds a uniform array; VEC4_TEXTURE, a
 * vec4 array held in a texture by Runtime.vec4Texture), then the params.
 */
function bindings(list: [string, string][]): string {
  const lines = list.map(([name, type], i) => {
    if (type.startsWith('uniform ')) return `@group(0) @binding(${i}) var<uniform> ${name}: ${type.slice(8)};`;
    if (type === VEC4_TEXTURE) {
      return [
        `@group(0) @binding(${i}) var ${name}: texture_storage_2d<rgba32float, read>;`,
        `fn ${name}_at(i: u32) -> vec4f { return textureLoad(${name}, vec2u(i & ${VEC4_TEXTURE_WIDTH - 1}u, i >> ${Math.log2(VEC4_TEXTURE_WIDTH)}u)); }`,
      ].join('\n');
    }
    const access = name === 'Y' || name === 'P' ? 'read_write' : 'read';
    return `@group(0) @binding(${i}) var<storage, ${access}> ${name}: ${type};`;
  });
  lines.push(`@group(0) @binding(${list.length}) var<uniform> p: Params;`);
  return lines.join('\n');
}

/** The binding type of a vec4 array read through a texture (see bindings and vec4At). */
const VEC4_TEXTURE = 'vec4 texture';
/** WGSL for vec4 `index` of array `name`, bound as a storage buffer or (tex) a texture. */
const vec4At = (name: string, index: string, tex: boolean) => (tex ? `${name}_at(${index})` : `${name}[${index}]`);

const comp = ['x', 'y', 'z', 'w'];
/** WGSL identifier fragment for a possibly negative integer. */
const id = (d: number) => (d < 0 ? `m${-d}` : `${d}`);
const mod4 = (v: number) => ((v % 4) + 4) % 4;

// ---- reg: window plans

/**
 * How a lane loads its input window: offsets d (relative to an aligned base, see callers) that
 * fall in an aligned vec4 chunk with at least `minUsed` used values load as one vec4 (vecX
 * only; ax is the base's offset mod 4), the rest as scalars.
 */
interface WindowPlan {
  chunks: number[];
  inChunk: Map<number, [number, number]>;
  scalarD: number[];
}

function windowPlan(ds: Set<number>, vecX: boolean, ax: number, minUsed = 3): WindowPlan {
  const D = [...ds].sort((a, b) => a - b);
  const chunks: number[] = [];
  const inChunk = new Map<number, [number, number]>();
  if (vecX) {
    const start0 = D[0] - mod4(ax + D[0]);
    for (let d0 = start0; d0 <= D[D.length - 1]; d0 += 4) {
      const used = [0, 1, 2, 3].filter((i) => ds.has(d0 + i));
      if (used.length >= minUsed) {
        chunks.push(d0);
        for (const i of used) inChunk.set(d0 + i, [d0, i]);
      }
    }
  }
  return { chunks, inChunk, scalarD: D.filter((d) => !inChunk.has(d)) };
}

// ---- reg: conv kernel

interface RegConv {
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
  /** OFFX mod 4 (fixes which window offsets start an aligned vec4). */
  ax: number;
  /** chan mode with KIN % 4 != 0: guard the channels past KIN. */
  kinTail: boolean;
  /** Output rows hold whole vec4s and the lane's 4 positions are adjacent and aligned. */
  vecY: boolean;
  /** vec4s of the uniform array the packed weights bind as (a power of two), or 0: storage. */
  uniformW: number;
  /**
   * chan mode, 1x1 kernel with kin-major weights [KIN, ROWS] (conv's input gradient): read the
   * weight tensor as it is, a vec4 holding four rows of one input channel, instead of repacking.
   */
  rowVec4: boolean;
}

function regConvKey(v: RegConv): string {
  return `conv.reg|R${v.R}|P${v.PJ}|${v.mode}|TX${v.TX}|S${v.SX}|D${v.DIR}|vx${v.vecX ? v.ax : '-'}|kt${+v.kinTail}|vy${+v.vecY}|uw${v.uniformW}|r4${+v.rowVec4}`;
}

/** Window offsets d (ix = qx0 * SX + OFFX + d) of position j and horizontal tap tx. */
const convD = (v: RegConv, j: number, tx: number) => j * v.SX + v.DIR * tx;

function regConvWindow(v: RegConv): WindowPlan {
  const ds = new Set<number>();
  for (let j = 0; j < v.PJ; j++) for (let tx = 0; tx < v.TX; tx++) ds.add(convD(v, j, tx));
  return windowPlan(ds, v.vecX, v.ax);
}

function regConvCode(v: RegConv): string {
  const J = Math.ceil(v.R / 8);
  const G = Math.ceil(v.TX / 4);
  const chans = v.mode === 'chan' ? 4 : 1;
  const { chunks, inChunk, scalarD } = regConvWindow(v);
  const setup: string[] = [];
  setup.push(`  let xq = i32(qx0 * ${v.SX}u) + p.OFFX;`);
  for (const d of scalarD) {
    setup.push(`  let ix_${id(d)} = xq + ${d};`);
    setup.push(`  let ok_${id(d)} = ix_${id(d)} >= 0 && ix_${id(d)} < i32(p.IW);`);
    setup.push(`  let ixc_${id(d)} = u32(clamp(ix_${id(d)}, 0, i32(p.IW) - 1));`);
  }
  for (const d0 of chunks) {
    setup.push(`  let okv_${id(d0)} = xq + ${d0} >= 0 && xq + ${d0} < i32(p.IW);`);
    setup.push(`  let ixv_${id(d0)} = select(0u, u32(xq + ${d0}), okv_${id(d0)});`);
  }
  // This iteration's kernel row ty: its input row for this lane.
  const rowSetup = [
    `    let iy = i32(qy * p.SY) ${v.DIR > 0 ? '+' : '-'} i32(ty) + p.OFFY;`,
    `    let rok = iy >= 0 && iy < i32(p.IH);`,
    `    let rix = (b * p.KIN * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW;`,
  ];
  // Weight vec4 blocks of one kernel row: its tap groups g (tap mode) or taps tx (chan mode),
  // stored consecutively for consecutive (k, ty), i.e. for consecutive iterations.
  const blocks: { g: number; tx: number }[] = [];
  if (v.mode === 'tap') for (let g = 0; g < G; g++) blocks.push({ g, tx: -1 });
  else for (let tx = 0; tx < v.TX; tx++) blocks.push({ g: -1, tx });
  const BPK = blocks.length;
  // rowVec4: per iteration the subgroup needs R vec4s (R / 4 row quads x 4 channels); vec4 f
  // (quad f % (R / 4), channel f / (R / 4)) is loaded by lane f % 8 as its load f / 8.
  const QUADS = v.R / 4;
  for (let jj = 0; jj < J; jj++) {
    if (v.rowVec4) {
      setup.push(`  let wq_${jj} = (lane + ${8 * jj}u) % ${QUADS}u;`);
      setup.push(`  let wc_${jj} = (lane + ${8 * jj}u) / ${QUADS}u;`);
    } else {
      setup.push(`  let wb_${jj} = (wrow + ${8 * jj}u) * (p.KITERS * ${BPK}u);`);
    }
  }

  const H = v.PJ / 4; // vec4 accumulators per row
  const acc = [];
  for (let r = 0; r < v.R; r++) for (let h = 0; h < H; h++) acc.push(`  var acc_${r}_${h} = vec4f(0.0);`);

  const body: string[] = [...rowSetup];
  // Input window: channel c of this k step (chan mode: four), row ty, offsets D.
  for (let c = 0; c < chans; c++) {
    let ch = c === 0 ? 'xk' : `xk + ${c}u`;
    let chOk = '';
    if (v.kinTail) {
      body.push(`    let cok_${c} = ${ch} < p.KIN;`);
      ch = `min(${ch}, p.KIN - 1u)`;
      chOk = ` && cok_${c}`;
    }
    const base = `xo_${c}`;
    body.push(`    let ${base} = rix + (${ch}) * IHW;`);
    for (const d0 of chunks) {
      body.push(`    let xv_${c}_${id(d0)} = select(vec4f(0.0), X4[(${base} + ixv_${id(d0)}) / 4u], rok && okv_${id(d0)}${chOk});`);
    }
    for (const d of scalarD) {
      body.push(`    let x_${c}_${id(d)} = select(0.0, X[${base} + ixc_${id(d)}], rok && ok_${id(d)}${chOk});`);
    }
  }
  const xval = (c: number, d: number) => {
    const ch = inChunk.get(d);
    return ch ? `xv_${c}_${id(ch[0])}.${comp[ch[1]]}` : `x_${c}_${id(d)}`;
  };
  blocks.forEach((blk, bi) => {
    for (let jj = 0; jj < J; jj++) {
      if (v.rowVec4) {
        // Channel xk + wc of row quad m0 / 4 + wq; channels past KIN (and the quads of rows past
        // ROWS, never stored) read a clamped element.
        const ch = `xk + wc_${jj}`;
        const idx = `min((${ch}) * (p.ROWS / 4u) + m0 / 4u + wq_${jj}, ${v.uniformW ? `${v.uniformW - 1}u` : 'arrayLength(&Wp) - 1u'})`;
        body.push(v.kinTail ? `    let w_${bi}_${jj} = select(vec4f(0.0), Wp[${idx}], ${ch} < p.KIN);` : `    let w_${bi}_${jj} = Wp[${idx}];`);
      } else {
        body.push(`    let w_${bi}_${jj} = Wp[wb_${jj} + it * ${BPK}u + ${bi}u];`);
      }
    }
  });
  // Terms of one row's update: (block, weight component, accumulator h) -> the weight
  // component times a vec4 of inputs (positions 4h .. 4h + 3).
  const terms: { bi: number; comp: number; h: number; xs: string }[] = [];
  blocks.forEach((blk, bi) => {
    for (let h = 0; h < H; h++) {
      const js = [0, 1, 2, 3].map((j) => 4 * h + j);
      if (v.mode === 'tap') {
        const T = Math.min(4, v.TX - 4 * blk.g);
        for (let t = 0; t < T; t++) {
          const tx = 4 * blk.g + t;
          terms.push({ bi, comp: t, h, xs: `vec4f(${js.map((j) => xval(0, convD(v, j, tx))).join(', ')})` });
        }
      } else {
        for (let c = 0; c < 4; c++) {
          terms.push({ bi, comp: c, h, xs: `vec4f(${js.map((j) => xval(c, convD(v, j, blk.tx))).join(', ')})` });
        }
      }
    }
  });
  // Shared input vectors (the same vec4 serves every row).
  const xvec = new Map<string, string>();
  for (const t of terms) {
    if (!xvec.has(t.xs)) {
      const name = `xs_${xvec.size}`;
      xvec.set(t.xs, name);
      body.push(`    let ${name} = ${t.xs};`);
    }
  }
  // Row by row: broadcast the row's weights from the lane that loaded them, then one chained
  // update per accumulator.
  for (let r = 0; r < v.R; r++) {
    // The weight of row r for term t: component t.comp of the row's broadcast vec4, or
    // (rowVec4) component r % 4 of the vec4 of its quad and channel t.comp.
    let wgt = (t: { bi: number; comp: number }) => `s_${r}_${t.bi}.${comp[t.comp]}`;
    if (v.rowVec4) {
      if (r % 4 === 0) {
        for (let c = 0; c < 4; c++) {
          const f = c * QUADS + (r >> 2);
          body.push(`    let q_${r >> 2}_${c} = subgroupBroadcast(w_0_${f >> 3}, ${f & 7}u);`);
        }
      }
      wgt = (t) => `q_${r >> 2}_${t.comp}.${comp[r & 3]}`;
    } else {
      for (let bi = 0; bi < BPK; bi++) {
        body.push(`    let s_${r}_${bi} = subgroupBroadcast(w_${bi}_${r >> 3}, ${r & 7}u);`);
      }
    }
    for (let h = 0; h < H; h++) {
      let e = `acc_${r}_${h}`;
      for (const t of terms) if (t.h === h) e = `fma(vec4f(${wgt(t)}), ${xvec.get(t.xs)}, ${e})`;
      body.push(`    acc_${r}_${h} = ${e};`);
    }
  }

  const epi: string[] = [];
  epi.push(`  let oy = qy * p.OSY + p.OPY;`);
  for (let r = 0; r < v.R; r++) {
    epi.push(`  if (m0 + ${r}u < p.ROWS) {`);
    epi.push(`    let row = m0 + ${r}u;`);
    epi.push(`    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;`);
    epi.push(`    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);`);
    for (let h = 0; h < H; h++) {
      epi.push(`    var v${h} = acc_${r}_${h} + vec4f(bv);`);
      epi.push(`    if (p.RELU != 0u) { v${h} = max(v${h}, vec4f(0.0)); }`);
      if (v.vecY) {
        const q = `qx0 + ${4 * h}u`;
        epi.push(H > 1 ? `    if (${q} < p.QW) { Y[(ob + ${q}) / 4u] = v${h}; }` : `    Y[(ob + qx0) / 4u] = v${h};`);
      } else {
        for (let j = 0; j < 4; j++) {
          const q = `qx0 + ${4 * h + j}u`;
          epi.push(`    if (${q} < p.QW) { Y[ob + (${q}) * p.OSX + p.OPX] = v${h}.${comp[j]}; }`);
        }
      }
    }
    epi.push(`  }`);
  }

  const binds: [string, string][] = [];
  if (scalarD.length) binds.push(['X', 'array<f32>']);
  if (chunks.length) binds.push(['X4', 'array<vec4f>']);
  binds.push(['Wp', v.uniformW ? `uniform array<vec4f, ${v.uniformW}>` : 'array<vec4f>']);
  binds.push(['bias', 'array<f32>']);
  binds.push(['Y', v.vecY ? 'array<vec4f>' : 'array<f32>']);
  return wgslKernel('conv', 'conv_reg', {
    ENABLE: 'enable subgroups;',
    BINDINGS: bindings(binds),
    R: v.R,
    PJ: v.PJ,
    SETUP: setup.join('\n'),
    ACC_DECL: acc.join('\n'),
    BODY: body.join('\n'),
    EPILOGUE: epi.join('\n'),
  });
}


// ---- reg: weight-gradient kernel

interface RegWgrad {
  R: number;
  G: number;
  /** Accumulator width: taps per group (TX when one group covers the kernel row, else 4). */
  T: number;
  /** Column groups per lane: each broadcast A value then feeds CPL * T accumulators. */
  CPL: number;
  SX: number;
  vecA: boolean;
  vecX: boolean;
  ax: number;
  UQ: number;
  /** Read A4 and X4 through textures (wgradTextures). */
  texA: boolean;
  texX: boolean;
}

function regWgradKey(v: RegWgrad): string {
  return `convw.reg|R${v.R}|G${v.G}|T${v.T}|C${v.CPL}|S${v.SX}|va${+v.vecA}|vx${v.vecX ? v.ax : '-'}|u${v.UQ}|tx${+v.texA}${+v.texX}`;
}

/** Window offsets d (ix = qx0 * SX + OFFX + 4g + d) of position j and tap t. */
function regWgradWindow(v: RegWgrad): WindowPlan {
  const ds = new Set<number>();
  for (let j = 0; j < 4; j++) for (let t = 0; t < v.T; t++) ds.add(j * v.SX + t);
  // From a texture every value comes in a vec4 load (one gather per component for all lanes,
  // where a scalar storage load is a load per lane).
  return windowPlan(ds, v.vecX, v.ax, v.texX ? 1 : 3);
}

/** Rows of A each lane loads for its subgroup (clamped: rows past ROWS are never stored). */
function wgradARows(R: number): string {
  const out: string[] = [];
  for (let jj = 0; jj < Math.ceil(R / 8); jj++) {
    const lanePart = R < 8 ? `min(lane, ${R - 1}u)` : 'lane';
    out.push(`  let ar_${jj} = min(m0 + ${lanePart} + ${8 * jj}u, p.ROWS - 1u);`);
  }
  return out.join('\n');
}

/** The params of both reg weight-gradient kernels, in the order dispatchRegWgrad writes them. */
const WGRAD_PARAMS = `struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, NGI: u32,
  TY: u32, NCG: u32, SY: u32, CHUNK: u32,
  OFFY: i32, OFFX: i32, KITERS: u32, _pad: u32,
}`;

/** Zeros that pad a T-wide accumulator to the vec4 of a partial-sum column group. */
const wgradPad = (T: number) => ', 0.0'.repeat(4 - T);

/** Bindings of the reg weight-gradient kernels: A, the input X (scalar and/or vec4), P. */
function wgradBindings(v: { vecA: boolean; texA: boolean; texX: boolean }, plan: WindowPlan): [string, string][] {
  const vec4 = (tex: boolean) => (tex ? VEC4_TEXTURE : 'array<vec4f>');
  const binds: [string, string][] = [[v.vecA ? 'A4' : 'A', v.vecA ? vec4(v.texA) : 'array<f32>']];
  if (plan.scalarD.length) binds.push(['X', 'array<f32>']);
  if (plan.chunks.length) binds.push(['X4', vec4(v.texX)]);
  binds.push(['P', 'array<vec4f>']);
  return binds;
}

function regWgradCode(v: RegWgrad): string {
  const J = Math.ceil(v.R / 8);
  const vt = v.T === 1 ? 'f32' : `vec${v.T}f`;
  const { chunks, inChunk, scalarD } = regWgradWindow(v);

  const cols: string[] = [];
  for (let c = 0; c < v.CPL; c++) {
    cols.push(`  let cgr_${c} = (wg.x * 8u + lane) * ${v.CPL}u + ${c}u;`);
    cols.push(`  let cg_${c} = min(cgr_${c}, p.NCG - 1u);`);
    cols.push(`  let g_${c} = cg_${c} % ${v.G}u;`);
    cols.push(`  let ty_${c} = (cg_${c} / ${v.G}u) % p.TY;`);
    cols.push(`  let kin_${c} = cg_${c} / (${v.G}u * p.TY);`);
  }
  const acc = [];
  for (let r = 0; r < v.R; r++) for (let c = 0; c < v.CPL; c++) acc.push(`  var acc_${r}_${c} = ${vt}(0.0);`);

  const body: string[] = [];
  // Input rows of this iteration, one per column group.
  for (let c = 0; c < v.CPL; c++) {
    body.push(`    let iy_${c} = i32(qy * p.SY + ty_${c}) + p.OFFY;`);
    body.push(`    let rok_${c} = iy_${c} >= 0 && iy_${c} < i32(p.IH);`);
    body.push(`    let xrow_${c} = ((b * p.KIN + kin_${c}) * p.IH + u32(clamp(iy_${c}, 0, i32(p.IH) - 1))) * p.IW;`);
  }
  const terms: string[][] = Array.from({ length: v.R * v.CPL }, () => []);
  for (let u = 0; u < v.UQ; u++) {
    body.push(`    let qx0_${u} = (qg + ${u}u) * 4u;`);
    // A: four positions of row ar_jj.
    for (let jj = 0; jj < J; jj++) {
      const i0 = `(abase + ar_${jj} * p.QH) * p.QW + qx0_${u}`;
      if (v.vecA) {
        body.push(`    let av_${u}_${jj} = ${vec4At('A4', `(${i0}) / 4u`, v.texA)};`);
      } else {
        body.push(`    let ai_${u}_${jj} = ${i0};`);
        const parts = [0, 1, 2, 3].map((j) => `select(0.0, A[min(ai_${u}_${jj} + ${j}u, arrayLength(&A) - 1u)], qx0_${u} + ${j}u < p.QW)`);
        body.push(`    let av_${u}_${jj} = vec4f(${parts.join(', ')});`);
      }
    }
    // X windows of this lane's column groups.
    for (let c = 0; c < v.CPL; c++) {
      const n = `${u}_${c}`;
      body.push(`    let xb_${n} = i32(qx0_${u} * ${v.SX}u + 4u * g_${c}) + p.OFFX;`);
      for (const d0 of chunks) {
        const ix = `xb_${n} + ${d0}`;
        const x4 = vec4At('X4', `(xrow_${c} + select(0u, u32(${ix}), ${ix} >= 0 && ${ix} < i32(p.IW))) / 4u`, v.texX);
        body.push(`    let xv_${n}_${id(d0)} = select(vec4f(0.0), ${x4}, rok_${c} && ${ix} >= 0 && ${ix} < i32(p.IW));`);
      }
      for (const d of scalarD) {
        const ix = `xb_${n} + ${d}`;
        body.push(`    let x_${n}_${id(d)} = select(0.0, X[xrow_${c} + u32(clamp(${ix}, 0, i32(p.IW) - 1))], rok_${c} && ${ix} >= 0 && ${ix} < i32(p.IW));`);
      }
      const xval = (d: number) => {
        const ch = inChunk.get(d);
        return ch ? `xv_${n}_${id(ch[0])}.${comp[ch[1]]}` : `x_${n}_${id(d)}`;
      };
      for (let j = 0; j < 4; j++) {
        const xs = [];
        for (let t = 0; t < v.T; t++) xs.push(xval(j * v.SX + t));
        body.push(`    let xs_${n}_${j} = ${vt}(${xs.join(', ')});`);
      }
      for (let r = 0; r < v.R; r++) {
        for (let j = 0; j < 4; j++) terms[r * v.CPL + c].push(`${vt}(a_${u}_${r}.${comp[j]}), xs_${n}_${j}`);
      }
    }
  }
  // Row by row: broadcast this row's A values, then one chained update per accumulator.
  for (let r = 0; r < v.R; r++) {
    for (let u = 0; u < v.UQ; u++) body.push(`    let a_${u}_${r} = subgroupBroadcast(av_${u}_${r >> 3}, ${r & 7}u);`);
    for (let c = 0; c < v.CPL; c++) {
      let e = `acc_${r}_${c}`;
      for (const t of terms[r * v.CPL + c]) e = `fma(${t}, ${e})`;
      body.push(`    acc_${r}_${c} = ${e};`);
    }
  }

  const epi: string[] = [];
  const pad = wgradPad(v.T);
  for (let r = 0; r < v.R; r++) {
    for (let c = 0; c < v.CPL; c++) {
      epi.push(`  if (m0 + ${r}u < p.ROWS && cgr_${c} < p.NCG) { P[(wg.z * p.ROWS + m0 + ${r}u) * p.NCG + cg_${c}] = vec4f(acc_${r}_${c}${pad}); }`);
    }
  }
  return wgslKernel('conv', 'convw_reg', {
    ENABLE: 'enable subgroups;',
    WGRAD_PARAMS,
    BINDINGS: bindings(wgradBindings(v, { chunks, inChunk, scalarD })),
    R: v.R,
    UQ: v.UQ,
    AROWS: wgradARows(v.R),
    COLS: cols.join('\n'),
    ACC_DECL: acc.join('\n'),
    BODY: body.join('\n'),
    EPILOGUE: epi.join('\n'),
  });
}

// ---- reg: weight-gradient kernel walking down the rows (stride-1 kernel rows)

interface RegWgradRows {
  R: number;
  /** Kernel rows (TY >= 2): column groups per lane, one per row, all of one input channel. */
  TY: number;
  /** Taps per kernel row (<= 4): the accumulator width. */
  T: number;
  SX: number;
  vecA: boolean;
  vecX: boolean;
  ax: number;
  /** Read A4 and X4 through textures (wgradTextures). */
  texA: boolean;
  texX: boolean;
}

function regWgradRowsKey(v: RegWgradRows): string {
  return `convw.rows|R${v.R}|TY${v.TY}|T${v.T}|S${v.SX}|va${+v.vecA}|vx${v.vecX ? v.ax : '-'}|tx${+v.texA}${+v.texX}`;
}

function regWgradRowsWindow(v: RegWgradRows): WindowPlan {
  return regWgradWindow({ R: v.R, G: 1, T: v.T, CPL: 1, SX: v.SX, vecA: v.vecA, vecX: v.vecX, ax: v.ax, UQ: 1, texA: v.texA, texX: v.texX });
}

function regWgradRowsCode(v: RegWgradRows): string {
  const J = Math.ceil(v.R / 8);
  const vt = v.T === 1 ? 'f32' : `vec${v.T}f`;
  const { chunks, inChunk, scalarD } = regWgradRowsWindow(v);
  // The values of one input row: its aligned vec4 chunks and its scalars.
  const names = (row: string) => [
    ...chunks.map((d0) => ({ name: `${row}_v${id(d0)}`, type: 'vec4f', d0, scalar: false })),
    ...scalarD.map((d) => ({ name: `${row}_s${id(d)}`, type: 'f32', d0: d, scalar: true })),
  ];
  // Statements loading input row qy + OFFY + t into the values of `row` (`assign`: ring vars).
  const loadRow = (t: number, row: string, assign: boolean, indent: string): string[] => {
    const out = [
      `${indent}let iy_${row} = i32(qy + ${t}u) + p.OFFY;`,
      `${indent}let rok_${row} = iy_${row} >= 0 && iy_${row} < i32(p.IH);`,
      `${indent}let xrow_${row} = (chan + u32(clamp(iy_${row}, 0, i32(p.IH) - 1))) * p.IW;`,
    ];
    for (const n of names(row)) {
      const ix = `xb + ${n.d0}`;
      const ok = `rok_${row} && ${ix} >= 0 && ${ix} < i32(p.IW)`;
      const value = n.scalar
        ? `select(0.0, X[xrow_${row} + u32(clamp(${ix}, 0, i32(p.IW) - 1))], ${ok})`
        : `select(vec4f(0.0), ${vec4At('X4', `(xrow_${row} + select(0u, u32(${ix}), ${ix} >= 0 && ${ix} < i32(p.IW))) / 4u`, v.texX)}, ${ok})`;
      out.push(`${indent}${assign ? '' : 'let '}${n.name} = ${value};`);
    }
    return out;
  };
  const rowName = (ty: number) => (ty === v.TY - 1 ? 'xn' : `ring${ty}`);

  const ring: string[] = [];
  for (let t = 0; t < v.TY - 1; t++) for (const n of names(`ring${t}`)) ring.push(`  var ${n.name} = ${n.type}(0.0);`);
  const fill: string[] = [];
  for (let t = 0; t < v.TY - 1; t++) fill.push(...loadRow(t, `ring${t}`, true, '      '));
  const acc: string[] = [];
  for (let r = 0; r < v.R; r++) for (let ty = 0; ty < v.TY; ty++) acc.push(`  var acc_${r}_${ty} = ${vt}(0.0);`);

  const body: string[] = [...loadRow(v.TY - 1, 'xn', false, '    ')];
  for (let jj = 0; jj < J; jj++) {
    const i0 = `(abase + ar_${jj} * p.QH) * p.QW + qx0`;
    if (v.vecA) {
      body.push(`    let av_${jj} = ${vec4At('A4', `(${i0}) / 4u`, v.texA)};`);
    } else {
      body.push(`    let ai_${jj} = ${i0};`);
      const parts = [0, 1, 2, 3].map((j) => `select(0.0, A[min(ai_${jj} + ${j}u, arrayLength(&A) - 1u)], qx0 + ${j}u < p.QW)`);
      body.push(`    let av_${jj} = vec4f(${parts.join(', ')});`);
    }
  }
  // Per kernel row: the T taps seen by each of the four positions.
  for (let ty = 0; ty < v.TY; ty++) {
    const row = rowName(ty);
    const xval = (d: number) => {
      const ch = inChunk.get(d);
      return ch ? `${row}_v${id(ch[0])}.${comp[ch[1]]}` : `${row}_s${id(d)}`;
    };
    for (let j = 0; j < 4; j++) {
      const xs = [];
      for (let t = 0; t < v.T; t++) xs.push(xval(j * v.SX + t));
      body.push(`    let xs_${ty}_${j} = ${vt}(${xs.join(', ')});`);
    }
  }
  // Row by row of A: broadcast its four positions, then one chained update per kernel row.
  for (let r = 0; r < v.R; r++) {
    body.push(`    let a_${r} = subgroupBroadcast(av_${r >> 3}, ${r & 7}u);`);
    for (let ty = 0; ty < v.TY; ty++) {
      let e = `acc_${r}_${ty}`;
      for (let j = 0; j < 4; j++) e = `fma(${vt}(a_${r}.${comp[j]}), xs_${ty}_${j}, ${e})`;
      body.push(`    acc_${r}_${ty} = ${e};`);
    }
  }
  const shift: string[] = [];
  for (let t = 0; t < v.TY - 1; t++) {
    const src = rowName(t + 1);
    const dst = names(`ring${t}`);
    names(src).forEach((n, i) => shift.push(`    ${dst[i].name} = ${n.name};`));
  }
  const epi: string[] = [];
  const pad = wgradPad(v.T);
  for (let r = 0; r < v.R; r++) {
    for (let ty = 0; ty < v.TY; ty++) {
      epi.push(`  if (m0 + ${r}u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + ${r}u) * p.NCG + kin * ${v.TY}u + ${ty}u] = vec4f(acc_${r}_${ty}${pad}); }`);
    }
  }
  return wgslKernel('conv', 'convw_rows', {
    ENABLE: 'enable subgroups;',
    WGRAD_PARAMS,
    BINDINGS: bindings(wgradBindings(v, { chunks, inChunk, scalarD })),
    R: v.R,
    SX: v.SX,
    AROWS: wgradARows(v.R),
    RING_DECL: ring.join('\n'),
    ACC_DECL: acc.join('\n'),
    RING_FILL: fill.join('\n'),
    BODY: body.join('\n'),
    RING_SHIFT: shift.join('\n'),
    EPILOGUE: epi.join('\n'),
  });
}

// ---- smem kernels

function smemConvKernel(DIR: 1 | -1, bias: boolean, relu: boolean): Kernel {
  const key = `conv.smem|D${DIR}|b${+bias}|r${+relu}`;
  return kernelFor('conv.smem', key, () => {
    const binds: [string, string][] = [['X', 'array<f32>'], ['Wp', 'array<f32>']];
    if (bias) binds.push(['bias', 'array<f32>']);
    binds.push(['Y', 'array<f32>']);
    return wgslKernel('conv', 'conv_smem', {
      ENABLE: '',
      BINDINGS: bindings(binds),
      DIR: DIR === 1 ? '1' : '-1',
      BIAS_ADD: bias ? ' + bias[row]' : '',
      ACT: relu ? 'v = max(v, 0.0);' : '',
    });
  });
}

const smemWgradKernel = () =>
  kernelFor('convw.smem', 'convw.smem', () =>
    wgslKernel('conv', 'convw_smem', {
      ENABLE: '',
      BINDINGS: bindings([['A', 'array<f32>'], ['X', 'array<f32>'], ['P', 'array<f32>']]),
    }),
  );

// ---------------------------------------------------------------------------------------------
// Launchers

/** Rows per subgroup for the reg kernels. */
function regRows(rows: number): number {
  return rows > 8 ? 16 : rows > 4 ? 8 : 4;
}

/** Repacks `w` for `pass` (see the pack kernel). */
function packWeights(w: Tensor, pass: ConvPass, rowsPadded: number, chan: boolean, txp: number): Tensor {
  const kinp = chan ? Math.ceil(pass.KIN / 4) * 4 : pass.KIN;
  const total = rowsPadded * kinp * pass.TY * txp;
  const out = empty([total]);
  const u = new Uint32Array([
    pass.ROWS, rowsPadded, pass.KIN, kinp, pass.TY, pass.TX, txp, pass.KH,
    pass.KW, pass.KY0, pass.KX0, pass.TSY, pass.TSX, pass.kinMajor ? 1 : 0, chan ? 1 : 0, total,
  ]);
  // KIN4 is used only with chan (KINP a multiple of 4 there); the other branch must still compile.
  const dims = { TXP: txp, TY: pass.TY, KINP: kinp, KIN4: Math.ceil(kinp / 4) };
  const k = kernelFor('conv.pack', `conv.pack|${txp}|${pass.TY}|${kinp}`, () => wgslKernel('conv', 'pack', { ENABLE: '', ...dims }));
  rt().dispatch(k, [w.buffer, out.buffer], u, grid1d(Math.ceil(total / 256)));
  return out;
}

/** Runs one conv pass into `y` (all of y's positions of this pass are written). */
function runConvPass(x: Tensor, w: Tensor, bias: Tensor | null, y: Tensor, pass: ConvPass, relu: boolean, sched: ConvSchedule): void {
  // With few output channels the smem tile (64 of them) idles; on an H200 the reg kernel ran
  // such passes (3 channels: the first conv's input gradient, the last convT) 4-8x faster.
  if (sched === 'smem' && pass.ROWS <= 8 && flags().convSchedule === 'auto' && regAvailable()) sched = 'reg';
  if (sched === 'smem') {
    const wp = packWeights(w, pass, pass.ROWS, false, pass.TX);
    const MTOT = pass.B * pass.QH * pass.QW;
    const u = new Uint32Array([
      pass.B, pass.KIN, pass.IH, pass.IW, pass.ROWS, pass.QH, pass.QW, MTOT,
      pass.OH, pass.OW, pass.OSY, pass.OSX, pass.OPY, pass.OPX, pass.SY, pass.SX,
      0, 0, pass.TY, pass.TX, pass.KIN * pass.TY * pass.TX, pass.TX, pass.KIN, 0,
    ]);
    const i32 = new Int32Array(u.buffer);
    i32[16] = pass.OFFY;
    i32[17] = pass.OFFX;
    const buffers = [x.buffer, wp.buffer, ...(bias ? [bias.buffer] : []), y.buffer];
    rt().dispatch(smemConvKernel(pass.DIR, !!bias, relu), buffers, u, tileGrid(Math.ceil(MTOT / 64), Math.ceil(pass.ROWS / 64)));
    wp.dispose();
    return;
  }
  const chan = pass.TX === 1;
  // A 1x1 pass (channel mode) uses each input load for R rows only (no taps to share it), so
  // more rows per subgroup: 32 ran them 0-13% faster than 16 on lavapipe (medians of 21
  // interleaved runs). (On a GPU this kernel runs only passes with <= 8 rows.)
  const R = chan && pass.ROWS > 16 ? 32 : regRows(pass.ROWS);
  // More adjacent positions per lane reuse each broadcast weight more often: on lavapipe 8 ran
  // the 3x3 and 4x4 passes up to 2x faster than 4, and 16 another 1.0-1.4x (batch 32, medians
  // of 11 interleaved runs). The 1x1 passes (channel mode) are another matter: their loop body
  // (32 rows x PJ positions x 4 channels of FMAs) outgrew the instruction cache at 8 positions
  // (perf: samples spread evenly over 53 KB of code), and 4 ran them 11-22% faster at batch
  // 32 and 1-14% at batch 256 (res1x1 fwd 2.89 -> 2.42 ms, dgrad 2.38 -> 1.85, prevq fwd
  // 3.93 -> 3.39, dgrad 4.38 -> 3.91; medians of 7 interleaved runs; 16 or 64 rows slower).
  // A GPU runs this kernel only for passes with few output channels and needs the lanes: on an
  // H200, 8 positions beat 16 by 1.2-2.2x there (and 4 by 1.25x at batch 256).
  const cpu = rt().caps.isCpu;
  const PJ = pass.QW <= 4 || (cpu && chan) ? 4 : cpu && pass.QW > 8 ? 16 : 8;
  const v: RegConv = {
    R,
    PJ,
    mode: chan ? 'chan' : 'tap',
    TX: pass.TX,
    SX: pass.SX,
    DIR: pass.DIR,
    vecX: pass.IW % 4 === 0,
    ax: mod4(pass.OFFX),
    kinTail: chan && pass.KIN % 4 !== 0,
    vecY: pass.OSX === 1 && pass.OPX === 0 && pass.OW % 4 === 0 && pass.QW === pass.OW,
    uniformW: 0,
    rowVec4: false,
  };
  const rowsPadded = Math.ceil(pass.ROWS / R) * R;
  // A 1x1 kernel's weights need no repacking (a dispatch saved; ~0.1 ms on lavapipe at the
  // seed's 1x1 layers): [ROWS, KIN] is already the packed layout when no row or channel needs
  // padding, and [KIN, ROWS] reads as row quads (rowVec4).
  // A phase of a strided pass that no tap reaches (KY0 = KH or KX0 = KW, see phasePasses) only
  // writes its outputs (bias or zero): no iterations, and no weights to pack.
  const noTaps = pass.KY0 >= pass.KH || pass.KX0 >= pass.KW;
  const oneByOne = chan && pass.KH === 1 && pass.KW === 1 && !noTaps && !repack1x1Forced();
  const asPacked = oneByOne && !pass.kinMajor && rowsPadded === pass.ROWS && !v.kinTail;
  v.rowVec4 = oneByOne && pass.kinMajor && pass.ROWS % 4 === 0 && R >= 8;
  const wp = noTaps || asPacked || v.rowVec4 ? w : packWeights(w, pass, rowsPadded, chan, chan ? pass.TX : 4 * Math.ceil(pass.TX / 4));
  if (cpu) v.uniformW = uniformWeightVec4s(wp.size, wp.buffer.size);
  const NG = Math.ceil(pass.QW / PJ);
  const NPOS = pass.B * pass.QH * NG;
  const ksteps = chan ? Math.ceil(pass.KIN / 4) : pass.KIN;
  const u = new Uint32Array([
    pass.B, pass.KIN, pass.IH, pass.IW, pass.ROWS, pass.QH, pass.QW, NG,
    pass.OH, pass.OW, pass.OSY, pass.OSX, pass.OPY, pass.OPX, pass.SY, ksteps,
    0, 0, NPOS, chan ? 4 : 1,
    noTaps ? 0 : ksteps * pass.TY, pass.TY, bias ? 1 : 0, relu ? 1 : 0,
  ]);
  const i32 = new Int32Array(u.buffer);
  i32[16] = pass.OFFY;
  i32[17] = pass.OFFX;
  const key = regConvKey(v);
  const k = kernelFor('conv.reg', key, () => regConvCode(v));
  const plan = regConvWindow(v);
  // X and X4 (one buffer as scalars and as vec4s) are bound only when the kernel reads them.
  const buffers = [
    ...(plan.scalarD.length ? [x.buffer] : []),
    ...(plan.chunks.length ? [x.buffer] : []),
    v.uniformW ? { buffer: wp.buffer, size: v.uniformW * 16 } : wp.buffer,
    (bias ?? wp).buffer, // unread without a bias (HAS_BIAS = 0)
    y.buffer,
  ];
  rt().dispatch(k, buffers, u, tileGrid(Math.ceil(NPOS / 8), rowsPadded / R));
  if (wp !== w) wp.dispose();
}

/** Flag convRepack1x1 (VQ_CONV_REPACK_1X1=1): repack 1x1 weights as other kernels' (for tests and A/B runs). */
const repack1x1Forced = () => flags().convRepack1x1;

/**
 * The uniform array (vec4s) that packed weights of `floats` values in a buffer of `bufferBytes`
 * bind as in the reg conv kernel, or 0 to read them from storage (see uniformArrayVec4s). A
 * lane's weight loads are half the loads of a 1x1 pass. Measured on lavapipe (21 interleaved
 * rounds, median and min): the four 1x1 passes 4-17% faster at batch 32 and 256 (res1x1 fwd
 * b32 4.68 -> 3.89 ms, min 2.46 -> 2.17; prevq dgrad b32 6.68 -> 5.60, min 4.05 -> 3.59).
 * Flag convUniformWeights (VQ_CONV_UNIFORM_WEIGHTS=0) turns it off.
 */
export function uniformWeightVec4s(floats: number, bufferBytes: number): number {
  return flags().convUniformWeights ? uniformArrayVec4s(floats, bufferBytes) : 0;
}

/** Grid for `tiles` position tiles (over x, and z beyond 65535) by `rowTiles` row tiles (y). */
function tileGrid(tiles: number, rowTiles: number): [number, number, number] {
  const z = Math.ceil(tiles / 65535);
  return [Math.ceil(tiles / z), rowTiles, z];
}

/** Weight-gradient GEMM: dW[row, kin, ky, kx] = sum A[b, row, q] * X[b, kin, q * s + k - p]. */
interface WgradPass {
  B: number;
  ROWS: number;
  QH: number;
  QW: number;
  KIN: number;
  IH: number;
  IW: number;
  KH: number;
  KW: number;
  SY: number;
  SX: number;
  OFFY: number;
  OFFX: number;
}

function runWgrad(a: Tensor, x: Tensor, pass: WgradPass, sched: ConvSchedule): Tensor {
  const dw = empty([pass.ROWS, pass.KIN, pass.KH, pass.KW]);
  const G = Math.ceil(pass.KW / 4);
  const TXP = 4 * G;
  const NCOLP = pass.KIN * pass.KH * TXP; // columns of a partial-sum row (taps padded to TXP)
  let S: number;
  let P: Tensor;
  if (sched === 'smem') {
    const MTOT = pass.B * pass.QH * pass.QW;
    const NCOL = pass.KIN * pass.KH * pass.KW;
    const tiles = Math.ceil(pass.ROWS / 64) * Math.ceil(NCOL / 64);
    // Enough chunks to fill a GPU, each at least 256 positions deep.
    S = Math.max(1, Math.min(Math.ceil(256 / tiles), Math.ceil(MTOT / 256)));
    const chunk = Math.ceil(MTOT / S / 16) * 16;
    S = Math.ceil(MTOT / chunk);
    P = empty([S * pass.ROWS * NCOLP]);
    const u = new Uint32Array([
      pass.B, pass.KIN, pass.IH, pass.IW, pass.ROWS, pass.QH, pass.QW, NCOL,
      pass.KH, pass.KW, pass.SY, pass.SX, 0, 0, chunk, MTOT,
      TXP, pass.ROWS * NCOLP, 0, 0,
    ]);
    const i32 = new Int32Array(u.buffer);
    i32[12] = pass.OFFY;
    i32[13] = pass.OFFX;
    rt().dispatch(smemWgradKernel(), [a.buffer, x.buffer, P.buffer], u, [Math.ceil(pass.ROWS / 64), Math.ceil(NCOL / 64), S]);
  } else if (rowsWgradApplies(pass)) {
    ({ S, P } = rowsWgrad(a, x, pass));
  } else {
    const NG = Math.ceil(pass.QW / 4);
    const T = G === 1 ? pass.KW : 4;
    // One-tap rows (1x1 kernels): each loaded input value feeds only R rows, so 32 rows as in
    // the 1x1 forward: res1x1 and prevq weight gradients 2-25% faster than 16 rows on lavapipe
    // (batch 32 and 256, medians of 9-13 interleaved rounds; 64 rows won at batch 256 but lost
    // at batch 32).
    const R = T === 1 && pass.ROWS > 16 ? 32 : regRows(pass.ROWS);
    const NCG = pass.KIN * pass.KH * G;
    // Column groups per lane: each broadcast A value then feeds CPL * T accumulators. Two
    // (four for a 1x1 kernel, whose groups are one tap wide), unless that would leave a quarter
    // of the lanes without columns. Measured at batch 32 on lavapipe: CPL 2 ran the 4x4 and 3x3
    // layers 1.1-1.9x faster than CPL 4 (enc2 32 against 17 GFLOP/s), and position groups per
    // iteration beyond one (UQ) only slowed them.
    const usage = (c: number) => NCG / (Math.ceil(NCG / (8 * c)) * 8 * c);
    const CPL = [T === 1 ? 4 : 2, 1].find((c) => c === 1 || usage(c) >= 0.75)!;
    const UQ = 1;
    const tiles: [number, number] = [Math.ceil(NCG / (8 * CPL)), Math.ceil(pass.ROWS / R)];
    const v: RegWgrad = {
      R,
      G,
      T,
      CPL,
      SX: pass.SX,
      vecA: pass.QW % 4 === 0,
      vecX: pass.IW % 4 === 0,
      ax: mod4(pass.OFFX),
      UQ,
      // Each lane loads the input rows of its kernel rows: about KH / SY loads per row of X.
      ...wgradTextures(a, x, pass, tiles[0], tiles[1] * Math.ceil(pass.KH / pass.SY)),
    };
    const k = kernelFor('convw.reg', regWgradKey(v), () => regWgradCode(v));
    ({ S, P } = dispatchRegWgrad(k, regWgradWindow(v), v, a, x, pass, NG / UQ, NCG, tiles));
  }
  const N4 = (pass.ROWS * NCOLP) / 4; // vec4s of one chunk's partial sums
  const u = new Uint32Array([N4, S, 0, 0]);
  rt().dispatch(wsumKernel(G, pass.KW), [P.buffer, dw.buffer], u, grid1d(Math.ceil(N4 / 256)));
  P.dispose();
  return dw;
}

/** The chunk-sum kernel for kernel rows of KW taps padded to G vec4s (dW is whole vec4s when KW = 4 G). */
function wsumKernel(G: number, KW: number): Kernel {
  let store: string;
  if (KW === 4 * G) {
    store = '  dW[i] = s;';
  } else if (G === 1) {
    store = [`  let o = i * ${KW}u;`, ...comp.slice(0, KW).map((c, j) => `  dW[o + ${j}u] = s.${c};`)].join('\n');
  } else {
    const lines = [`  let r = i / ${G}u;`, `  let g = i - r * ${G}u;`, `  let o = r * ${KW}u + g * 4u;`];
    comp.forEach((c, j) => lines.push(`  if (g * 4u + ${j}u < ${KW}u) { dW[o + ${j}u] = s.${c}; }`));
    store = lines.join('\n');
  }
  return kernelFor('conv.wsum', `conv.wsum|G${G}|KW${KW}`, () =>
    wgslKernel('conv', 'wsum', { ENABLE: '', OUT: KW === 4 * G ? 'vec4f' : 'f32', STORE: store }));
}

/**
 * An operand goes through a texture when each of its vec4s is loaded about this many times:
 * the copy costs about as much as five storage-buffer loads saved (about 1.6 ns a vec4 at
 * lavapipe's 10 GB/s, against about 0.3 ns a lane saved per load).
 */
const TEXTURE_MIN_LOADS = 4;

/**
 * Which vec4 operands (A when QW % 4 = 0, X when IW % 4 = 0) a reg weight gradient reads
 * through textures filled by Runtime.vec4Texture: on a CPU device, where a texel load is a
 * gather for all lanes and a storage-buffer vec4 a scalar load per lane and component; each
 * operand whose vec4s are loaded (loadsA, loadsX) at least TEXTURE_MIN_LOADS times each, so
 * that the copy pays. Measured on lavapipe, copies included, paired over 9 rounds against
 * storage buffers only: 0.66-0.90 of the time at batch 32 and 0.81-0.92 at batch 256 (each
 * seed layer); texturing both operands of every layer gained less (enc1 1.08 and decT2 0.95
 * at batch 256, where A is loaded once per vec4) and lost on res3x3 at batch 256 in an
 * earlier run (1.05-1.25, its X loaded twice). Flag convWgradTextures (VQ_CONV_WGRAD_TEXTURES): 0 none, or A, X,
 * AX to force.
 */
function wgradTextures(a: Tensor, x: Tensor, pass: WgradPass, loadsA: number, loadsX: number): { texA: boolean; texX: boolean } {
  const r = rt();
  const env = flags().convWgradTextures;
  const on = r.caps.isCpu && env !== '0';
  const want = (name: string, loads: number) => (env === 'auto' ? loads >= TEXTURE_MIN_LOADS : env.includes(name));
  return {
    texA: on && pass.QW % 4 === 0 && want('A', loadsA) && r.vec4TextureFits(a.size / 4),
    texX: on && pass.IW % 4 === 0 && want('X', loadsX) && r.vec4TextureFits(x.size / 4),
  };
}

/**
 * Whether the reg weight gradient walks down the rows (convw_rows): stride-1 kernel rows, at
 * least two of them, one tap group (KW <= 4). Flag convWgradRows (VQ_CONV_WGRAD_ROWS=0) turns it off.
 */
function rowsWgradApplies(pass: WgradPass): boolean {
  return pass.SY === 1 && pass.KH >= 2 && pass.KW <= 4 && flags().convWgradRows;
}

/** Partial sums P [S chunks, ROWS, KIN * KH columns of vec4] of the weight gradient by convw_rows. */
function rowsWgrad(a: Tensor, x: Tensor, pass: WgradPass): { S: number; P: Tensor } {
  const R = regRows(pass.ROWS);
  const NG = Math.ceil(pass.QW / 4);
  const NCG = pass.KIN * pass.KH;
  const tiles: [number, number] = [Math.ceil(pass.KIN / 8), Math.ceil(pass.ROWS / R)];
  const v: RegWgradRows = {
    R,
    TY: pass.KH,
    T: pass.KW,
    SX: pass.SX,
    vecA: pass.QW % 4 === 0,
    vecX: pass.IW % 4 === 0,
    ax: mod4(pass.OFFX),
    // X through a texture only with the env override: the ring loads each input row once per
    // row tile, and a texture for it measured no gain over A's alone (batch 32 and 256, 9
    // rounds paired against storage buffers: enc3 0.92 and 0.95 with both, 0.90 and 0.89 with
    // A's alone; dec1 0.88 and 0.91 either way).
    ...wgradTextures(a, x, pass, tiles[0], 0),
  };
  // A chunk that starts inside a column loads its first rows afresh. Four positions per
  // iteration: eight (fewer accumulator assignments per FMA) measured 10-20% slower on lavapipe
  // at batch 32. Interleaved medians at batch 32 against convw_reg: enc3 62 -> 54 ms, res3x3
  // 18 -> 14 ms, dec1 36 -> 25 ms.
  const k = kernelFor('convw.rows', regWgradRowsKey(v), () => regWgradRowsCode(v));
  return dispatchRegWgrad(k, regWgradRowsWindow(v), v, a, x, pass, NG, NCG, tiles);
}

/**
 * Positions per weight-gradient chunk, at most (about): the workgroups of one chunk and row
 * tile (one per group of input channels) all read that chunk's rows of A, which then stay in
 * the L2 cache. Without the cap a batch-256 pass ran as one or two chunks, each workgroup
 * streaming megabytes of A; with it lavapipe ran them 8-20% faster (medians of 9 interleaved
 * rounds: enc3 462 -> 383 ms, res3x3 112 -> 89, dec1 209 -> 197, decT1 566 -> 492; 8192
 * positions gained less, prevq at 34-38 ms within noise; batch 32 unchanged).
 */
const WGRAD_CHUNK_POSITIONS = 4096;

/**
 * Workgroups a reg weight gradient is split into at least. On a CPU device each workgroup runs
 * whole on one of the driver's threads (lavapipe starts one per core, or LP_NUM_THREADS): eight
 * per thread keep them balanced, and fewer, longer chunks write and re-add fewer partial sums
 * (2 cores, batch 32, paired over 15 rounds: 16 workgroups ran prevq's weight gradient 6% and
 * res1x1's 8% faster than 64). A GPU (the reg schedule forced there) gets 64.
 */
function wgradWorkgroupTarget(): number {
  if (!rt().caps.isCpu) return 64;
  return 8 * rt().caps.hostThreads;
}

/**
 * Runs a reg weight-gradient kernel (convw_reg or convw_rows) over its tiles, the iterations
 * (b, qy, position group) split into chunks so that there are wgradWorkgroupTarget() workgroups
 * or more and no chunk is much over WGRAD_CHUNK_POSITIONS; returns the chunk count and the
 * partial sums P [S, ROWS, NCG vec4].
 */
function dispatchRegWgrad(k: Kernel, plan: WindowPlan, v: { texA: boolean; texX: boolean }, a: Tensor, x: Tensor, pass: WgradPass, NGI: number, NCG: number, tileGrid: [number, number]): { S: number; P: Tensor } {
  const KITERS = pass.B * pass.QH * NGI;
  const positions = pass.B * pass.QH * pass.QW;
  const forThreads = Math.ceil(wgradWorkgroupTarget() / (tileGrid[0] * tileGrid[1]));
  let S = Math.max(1, Math.min(KITERS, Math.max(forThreads, Math.round(positions / WGRAD_CHUNK_POSITIONS))));
  const chunk = Math.ceil(KITERS / S);
  S = Math.ceil(KITERS / chunk);
  const P = empty([S * pass.ROWS * NCG * 4]);
  const u = new Uint32Array([
    pass.B, pass.KIN, pass.IH, pass.IW, pass.ROWS, pass.QH, pass.QW, NGI,
    pass.KH, NCG, pass.SY, chunk, 0, 0, KITERS, 0,
  ]);
  const i32 = new Int32Array(u.buffer);
  i32[12] = pass.OFFY;
  i32[13] = pass.OFFX;
  // Textures are filled (a copy each) just before the dispatch: they are scratch, slot by slot.
  const operand = (t: Tensor, tex: boolean, slot: number): Binding => (tex ? rt().vec4Texture(t.buffer, t.size / 4, slot) : t.buffer);
  const buffers = [
    operand(a, v.texA, 0),
    ...(plan.scalarD.length ? [x.buffer] : []),
    ...(plan.chunks.length ? [operand(x, v.texX, 1)] : []),
    P.buffer,
  ];
  rt().dispatch(k, buffers, u, [tileGrid[0], tileGrid[1], S]);
  return { S, P };
}

/** Per-channel sum of g [B, C, H, W] over batch and positions. */
function biasGrad(g: Tensor): Tensor {
  const [B, C, H, W] = g.shape;
  const db = empty([C]);
  const v4 = (H * W) % 4 === 0;
  const k = kernelFor('conv.bias_grad', `conv.bias_grad|${v4 ? 4 : 1}`, () =>
    wgslKernel('conv', 'bias_grad', { ENABLE: '', T: v4 ? 'vec4f' : 'f32', SUM: v4 ? 's.x + s.y + s.z + s.w' : 's' }));
  rt().dispatch(k, [g.buffer, db.buffer], new Uint32Array([B, C, v4 ? (H * W) / 4 : H * W, 0]), [C, 1, 1]);
  return db;
}

function reluGrad(g: Tensor, y: Tensor): Tensor {
  const out = empty(g.shape);
  rt().dispatch(fixedKernel('relu_grad'), [g.buffer, y.buffer, out.buffer], new Uint32Array([g.size, 0]), grid1d(Math.ceil(g.size / 256)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Raw passes (no autograd), exported for benchmarks and for the backward rules

function pair(v: number | ConvPair | undefined, dflt: number, what: string, op: string): ConvPair {
  const p: ConvPair = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((n) => Number.isInteger(n))) throw new Error(`${op}: ${what} must be integers, got ${JSON.stringify(v)}`);
  return p;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function check4d(op: string, name: string, t: Tensor): void {
  assertDType(op, 'f32', t);
  if (t.rank !== 4) throw new Error(`${op}: ${name} must be 4-D, got shape ${fmt(t.shape)}`);
}

/** Validates conv2d's arguments and returns its geometry. */
export function conv2dGeom(x: Tensor, w: Tensor, bias: Tensor | null | undefined, opts: Conv2dOptions = {}): ConvGeom {
  const op = 'conv2d';
  check4d(op, 'input', x);
  check4d(op, 'weight', w);
  const [B, CI, IH, IW] = x.shape;
  const [CO, WCI, KH, KW] = w.shape;
  if (WCI !== CI) throw new Error(`${op}: input ${fmt(x.shape)} has ${CI} channels but weight ${fmt(w.shape)} expects ${WCI} (weight is [out, in, kh, kw])`);
  if (bias) {
    assertDType(op, 'f32', bias);
    if (bias.rank !== 1 || bias.shape[0] !== CO) throw new Error(`${op}: bias ${fmt(bias.shape)} does not match weight ${fmt(w.shape)} (needs [${CO}])`);
  }
  const [sy, sx] = pair(opts.stride, 1, 'stride', op);
  const [py, px] = pair(opts.padding, 0, 'padding', op);
  if (sy < 1 || sx < 1) throw new Error(`${op}: stride must be >= 1, got [${sy}, ${sx}]`);
  if (py < 0 || px < 0) throw new Error(`${op}: padding must be >= 0, got [${py}, ${px}]`);
  if (KH < 1 || KW < 1) throw new Error(`${op}: weight ${fmt(w.shape)} has an empty kernel`);
  const OH = Math.floor((IH + 2 * py - KH) / sy) + 1;
  const OW = Math.floor((IW + 2 * px - KW) / sx) + 1;
  if (OH < 1 || OW < 1) {
    throw new Error(`${op}: kernel ${KH}x${KW} is larger than the padded input ${IH + 2 * py}x${IW + 2 * px} (input ${fmt(x.shape)}, padding [${py}, ${px}])`);
  }
  return { B, CI, CO, IH, IW, OH, OW, KH, KW, sy, sx, py, px };
}

/** Validates convTranspose2d's arguments; returns the geometry of the conv it is the transpose of. */
export function convTranspose2dGeom(x: Tensor, w: Tensor, bias: Tensor | null | undefined, opts: ConvTranspose2dOptions = {}): ConvGeom {
  const op = 'convTranspose2d';
  check4d(op, 'input', x);
  check4d(op, 'weight', w);
  const [B, CI, IH, IW] = x.shape;
  const [WCI, CO, KH, KW] = w.shape;
  if (WCI !== CI) throw new Error(`${op}: input ${fmt(x.shape)} has ${CI} channels but weight ${fmt(w.shape)} expects ${WCI} (weight is [in, out, kh, kw])`);
  if (bias) {
    assertDType(op, 'f32', bias);
    if (bias.rank !== 1 || bias.shape[0] !== CO) throw new Error(`${op}: bias ${fmt(bias.shape)} does not match weight ${fmt(w.shape)} (needs [${CO}])`);
  }
  const [sy, sx] = pair(opts.stride, 1, 'stride', op);
  const [py, px] = pair(opts.padding, 0, 'padding', op);
  const [oy, ox] = pair(opts.outputPadding, 0, 'outputPadding', op);
  if (sy < 1 || sx < 1) throw new Error(`${op}: stride must be >= 1, got [${sy}, ${sx}]`);
  if (py < 0 || px < 0) throw new Error(`${op}: padding must be >= 0, got [${py}, ${px}]`);
  if (oy < 0 || ox < 0 || oy >= sy || ox >= sx) throw new Error(`${op}: outputPadding [${oy}, ${ox}] must be smaller than stride [${sy}, ${sx}]`);
  if (KH < 1 || KW < 1) throw new Error(`${op}: weight ${fmt(w.shape)} has an empty kernel`);
  const OH = (IH - 1) * sy - 2 * py + KH + oy;
  const OW = (IW - 1) * sx - 2 * px + KW + ox;
  if (OH < 1 || OW < 1) throw new Error(`${op}: output would be ${OH}x${OW} for input ${fmt(x.shape)}, weight ${fmt(w.shape)}, padding [${py}, ${px}]`);
  // The conv this is the transpose of maps [B, CO, OH, OW] to [B, CI, IH, IW].
  return { B, CI: CO, CO: CI, IH: OH, IW: OW, OH: IH, OW: IW, KH, KW, sy, sx, py, px };
}

/** conv2d forward: y [B, CO, OH, OW] (+ bias, relu). */
export function conv2dForward(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, sched = convSchedule()): Tensor {
  const y = empty([g.B, g.CO, g.OH, g.OW]);
  const pass = forwardPass(g.B, g.CI, g.IH, g.IW, g.CO, g.OH, g.OW, g.KH, g.KW, g.sy, g.sx, g.py, g.px, false);
  runConvPass(x, w, bias, y, pass, relu, sched);
  return y;
}

/**
 * The passes computing a conv's input gradient (or a transposed conv's output) [B, CI, IH, IW]
 * from [B, CO, OH, OW]: one per stride phase, or for a plain 1x1 conv the forward GEMM with the
 * weight read transposed (the same kernel as the forward 1x1 conv).
 */
function transposedPasses(g: ConvGeom): ConvPass[] {
  if (g.KH === 1 && g.KW === 1 && g.sy === 1 && g.sx === 1 && g.py === 0 && g.px === 0) {
    return [forwardPass(g.B, g.CO, g.OH, g.OW, g.CI, g.IH, g.IW, 1, 1, 1, 1, 0, 0, true)];
  }
  return phasePasses(g.B, g.CO, g.OH, g.OW, g.CI, g.IH, g.IW, g.KH, g.KW, g.sy, g.sx, g.py, g.px, true);
}

/** conv2d input gradient: dx [B, CI, IH, IW] from dy [B, CO, OH, OW]. */
export function conv2dInputGrad(dy: Tensor, w: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  const dx = empty([g.B, g.CI, g.IH, g.IW]);
  for (const pass of transposedPasses(g)) runConvPass(dy, w, null, dx, pass, false, sched);
  return dx;
}

/** conv2d weight gradient dw [CO, CI, KH, KW] from dy and the input x. */
export function conv2dWeightGrad(dy: Tensor, x: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  return runWgrad(dy, x, {
    B: g.B, ROWS: g.CO, QH: g.OH, QW: g.OW, KIN: g.CI, IH: g.IH, IW: g.IW, KH: g.KH, KW: g.KW,
    SY: g.sy, SX: g.sx, OFFY: -g.py, OFFX: -g.px,
  }, sched);
}

/** Bias gradient of either op: per-channel sum of the output gradient. */
export function convBiasGrad(dy: Tensor): Tensor {
  return biasGrad(dy);
}

/** convTranspose2d forward: y [B, CI(conv), IH(conv), IW(conv)] from x [B, CO(conv), OH, OW]. */
export function convTranspose2dForward(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, sched = convSchedule()): Tensor {
  const y = empty([g.B, g.CI, g.IH, g.IW]);
  for (const pass of transposedPasses(g)) runConvPass(x, w, bias, y, pass, relu, sched);
  return y;
}

/** convTranspose2d input gradient: dx [B, CO(conv), OH, OW] from dy [B, CI(conv), IH, IW]. */
export function convTranspose2dInputGrad(dy: Tensor, w: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  const dx = empty([g.B, g.CO, g.OH, g.OW]);
  const pass = forwardPass(g.B, g.CI, g.IH, g.IW, g.CO, g.OH, g.OW, g.KH, g.KW, g.sy, g.sx, g.py, g.px, false);
  runConvPass(dy, w, null, dx, pass, false, sched);
  return dx;
}

/** convTranspose2d weight gradient dw [in, out, KH, KW] from its input x and output gradient dy. */
export function convTranspose2dWeightGrad(dy: Tensor, x: Tensor, g: ConvGeom, sched = convSchedule()): Tensor {
  return runWgrad(x, dy, {
    B: g.B, ROWS: g.CO, QH: g.OH, QW: g.OW, KIN: g.CI, IH: g.IH, IW: g.IW, KH: g.KH, KW: g.KW,
    SY: g.sy, SX: g.sx, OFFY: -g.py, OFFX: -g.px,
  }, sched);
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
    const gy = relu ? reluGrad(grad, sy) : grad;
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
    const gy = relu ? reluGrad(grad, sy) : grad;
    const dx = need[0] ? convTranspose2dInputGrad(gy, sw, g) : null;
    const dw = need[1] ? convTranspose2dWeightGrad(gy, sx, g) : null;
    const db = bias && need[2] ? biasGrad(gy) : null;
    if (gy !== grad) gy.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

/** FLOPs (2 per multiply-add) of one conv2d forward with geometry `g`; each backward pass has as many. */
export function convFlops(g: ConvGeom): number {
  return 2 * g.B * g.CO * g.OH * g.OW * g.CI * g.KH * g.KW;
}
