// Conv geometry: argument validation, and the GEMM passes a conv or transposed conv is made of.
// Pure (no GPU): the plans (./plan.ts) and the launchers (./launch.ts) both start from here.
import { Tensor, assertDType } from '../tensor.js';

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
export interface ConvPass {
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
export function forwardPass(B: number, KIN: number, IH: number, IW: number, ROWS: number, OH: number, OW: number,
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
export function phasePasses(B: number, KIN: number, IH: number, IW: number, ROWS: number, OH: number, OW: number,
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

/**
 * The passes computing a conv's input gradient (or a transposed conv's output) [B, CI, IH, IW]
 * from [B, CO, OH, OW]: one per stride phase, or for a plain 1x1 conv the forward GEMM with the
 * weight read transposed (the same kernel as the forward 1x1 conv).
 */
export function transposedPasses(g: ConvGeom): ConvPass[] {
  if (g.KH === 1 && g.KW === 1 && g.sy === 1 && g.sx === 1 && g.py === 0 && g.px === 0) {
    return [forwardPass(g.B, g.CO, g.OH, g.OW, g.CI, g.IH, g.IW, 1, 1, 1, 1, 0, 0, true)];
  }
  return phasePasses(g.B, g.CO, g.OH, g.OW, g.CI, g.IH, g.IW, g.KH, g.KW, g.sy, g.sx, g.py, g.px, true);
}


/** Weight-gradient GEMM: dW[row, kin, ky, kx] = sum A[b, row, q] * X[b, kin, q * s + k - p]. */
export interface WgradPass {
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

/** The weight gradient of conv2d (a = dy, x = input) or of convTranspose2d (a = its input, x = dy). */
export function wgradPass(g: ConvGeom): WgradPass {
  return {
    B: g.B, ROWS: g.CO, QH: g.OH, QW: g.OW, KIN: g.CI, IH: g.IH, IW: g.IW, KH: g.KH, KW: g.KW,
    SY: g.sy, SX: g.sx, OFFY: -g.py, OFFX: -g.px,
  };
}

/** The conv-kernel pass of conv2d's forward and of convTranspose2d's input gradient. */
export function forwardConvPass(g: ConvGeom): ConvPass {
  return forwardPass(g.B, g.CI, g.IH, g.IW, g.CO, g.OH, g.OW, g.KH, g.KW, g.sy, g.sx, g.py, g.px, false);
}

// ---------------------------------------------------------------------------------------------
// Validation

function pair(v: number | ConvPair | undefined, dflt: number, what: string, op: string): ConvPair {
  const p: ConvPair = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((n) => Number.isInteger(n))) throw new Error(`${op}: ${what} must be integers, got ${JSON.stringify(v)}`);
  return p;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function check4d(op: string, name: string, t: Tensor): void {
  if (t.rank !== 4) throw new Error(`${op}: ${name} must be 4-D, got shape ${fmt(t.shape)}`);
}

/**
 * dtype and rank of input and weight (f32, or f16 on both), the bias's dtype (the input's) and
 * shape ([out]: weight dim `outDim`).
 */
function checkTensors(op: string, x: Tensor, w: Tensor, bias: Tensor | null | undefined, outDim: number): void {
  if (x.dtype !== 'f16') assertDType(op, 'f32', x);
  assertDType(op, x.dtype, w);
  check4d(op, 'input', x);
  check4d(op, 'weight', w);
  const CO = w.shape[outDim];
  if (bias) {
    assertDType(op, x.dtype, bias);
    if (bias.rank !== 1 || bias.shape[0] !== CO) throw new Error(`${op}: bias ${fmt(bias.shape)} does not match weight ${fmt(w.shape)} (needs [${CO}])`);
  }
}

/** Validates conv2d's arguments and returns its geometry. */
export function conv2dGeom(x: Tensor, w: Tensor, bias: Tensor | null | undefined, opts: Conv2dOptions = {}): ConvGeom {
  checkTensors('conv2d', x, w, bias, 0);
  return conv2dGeometry(x.shape, w.shape, opts);
}

/** conv2d's geometry from its input and weight shapes (no tensors needed: plans and tests use it). */
export function conv2dGeometry(xShape: readonly number[], wShape: readonly number[], opts: Conv2dOptions = {}): ConvGeom {
  const op = 'conv2d';
  const [B, CI, IH, IW] = xShape;
  const [CO, WCI, KH, KW] = wShape;
  if (WCI !== CI) throw new Error(`${op}: input ${fmt(xShape)} has ${CI} channels but weight ${fmt(wShape)} expects ${WCI} (weight is [out, in, kh, kw])`);
  const [sy, sx] = pair(opts.stride, 1, 'stride', op);
  const [py, px] = pair(opts.padding, 0, 'padding', op);
  if (sy < 1 || sx < 1) throw new Error(`${op}: stride must be >= 1, got [${sy}, ${sx}]`);
  if (py < 0 || px < 0) throw new Error(`${op}: padding must be >= 0, got [${py}, ${px}]`);
  if (KH < 1 || KW < 1) throw new Error(`${op}: weight ${fmt(wShape)} has an empty kernel`);
  const OH = Math.floor((IH + 2 * py - KH) / sy) + 1;
  const OW = Math.floor((IW + 2 * px - KW) / sx) + 1;
  if (OH < 1 || OW < 1) {
    throw new Error(`${op}: kernel ${KH}x${KW} is larger than the padded input ${IH + 2 * py}x${IW + 2 * px} (input ${fmt(xShape)}, padding [${py}, ${px}])`);
  }
  return { B, CI, CO, IH, IW, OH, OW, KH, KW, sy, sx, py, px };
}

/** Validates convTranspose2d's arguments; returns the geometry of the conv it is the transpose of. */
export function convTranspose2dGeom(x: Tensor, w: Tensor, bias: Tensor | null | undefined, opts: ConvTranspose2dOptions = {}): ConvGeom {
  checkTensors('convTranspose2d', x, w, bias, 1);
  return convTranspose2dGeometry(x.shape, w.shape, opts);
}

/** convTranspose2d's geometry (that of the conv it is the transpose of) from its input and weight shapes. */
export function convTranspose2dGeometry(xShape: readonly number[], wShape: readonly number[], opts: ConvTranspose2dOptions = {}): ConvGeom {
  const op = 'convTranspose2d';
  const [B, CI, IH, IW] = xShape;
  const [WCI, CO, KH, KW] = wShape;
  if (WCI !== CI) throw new Error(`${op}: input ${fmt(xShape)} has ${CI} channels but weight ${fmt(wShape)} expects ${WCI} (weight is [in, out, kh, kw])`);
  const [sy, sx] = pair(opts.stride, 1, 'stride', op);
  const [py, px] = pair(opts.padding, 0, 'padding', op);
  const [oy, ox] = pair(opts.outputPadding, 0, 'outputPadding', op);
  if (sy < 1 || sx < 1) throw new Error(`${op}: stride must be >= 1, got [${sy}, ${sx}]`);
  if (py < 0 || px < 0) throw new Error(`${op}: padding must be >= 0, got [${py}, ${px}]`);
  if (oy < 0 || ox < 0 || oy >= sy || ox >= sx) throw new Error(`${op}: outputPadding [${oy}, ${ox}] must be smaller than stride [${sy}, ${sx}]`);
  if (KH < 1 || KW < 1) throw new Error(`${op}: weight ${fmt(wShape)} has an empty kernel`);
  const OH = (IH - 1) * sy - 2 * py + KH + oy;
  const OW = (IW - 1) * sx - 2 * px + KW + ox;
  if (OH < 1 || OW < 1) throw new Error(`${op}: output would be ${OH}x${OW} for input ${fmt(xShape)}, weight ${fmt(wShape)}, padding [${py}, ${px}]`);
  // The conv this is the transpose of maps [B, CO, OH, OW] to [B, CI, IH, IW].
  return { B, CI: CO, CO: CI, IH: OH, IW: OW, OH: IH, OW: IW, KH, KW, sy, sx, py, px };
}


/** FLOPs (2 per multiply-add) of one conv2d forward with geometry `g`; each backward pass has as many. */
export function convFlops(g: ConvGeom): number {
  return 2 * g.B * g.CO * g.OH * g.OW * g.CI * g.KH * g.KW;
}
