// conv2d / convTranspose2d test cases shared by test/conv.test.ts and the browser suite
// (test/browser/suite.ts): the seed model's layers, the awkward shapes, their data (seeded per
// case) and float64 references. Platform-free: no node:*, no tap. The tests seed each case
// from its position in these lists; keep the order.
import * as C from '../../engine/conv.js';
import { Rng } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { convOut, convTOut, refConv2d, refConv2dGrads, refConvT2d, refConvT2dGrads, type RefConv, type RefConvT } from '../ref/conv.js';

export interface ConvCase {
  name: string;
  transposed: boolean;
  /** conv: [B, Cin, H, W] -> weight [Cout, Cin, kh, kw]; convT: weight [Cin, Cout, kh, kw]. */
  B: number;
  CI: number;
  IH: number;
  IW: number;
  CO: number;
  KH: number;
  KW: number;
  stride?: number | C.ConvPair;
  padding?: number | C.ConvPair;
  outputPadding?: number | C.ConvPair;
  bias?: boolean;
  relu?: boolean;
}

const pair = (v: number | C.ConvPair | undefined, d: number): C.ConvPair => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

export function refGeom(c: ConvCase): RefConvT {
  const [sy, sx] = pair(c.stride, 1);
  const [py, px] = pair(c.padding, 0);
  const [oy, ox] = pair(c.outputPadding, 0);
  return { B: c.B, CI: c.CI, IH: c.IH, IW: c.IW, CO: c.CO, KH: c.KH, KW: c.KW, sy, sx, py, px, oy, ox };
}

export const wShape = (c: ConvCase) => (c.transposed ? [c.CI, c.CO, c.KH, c.KW] : [c.CO, c.CI, c.KH, c.KW]);

export interface ConvData {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array | null;
  dy: Float32Array;
  yShape: number[];
}

const rand = (n: number, seed: number, scale = 1) => new Rng(seed).uniformArray(n, -scale, scale);
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Input, weights (scaled by 1 / sqrt(fan-in)), bias and an output gradient for case c, from `seed` to `seed + 3`. */
export function makeData(c: ConvCase, seed: number): ConvData {
  const g = refGeom(c);
  const [OH, OW] = c.transposed ? convTOut(g) : convOut(g);
  const fan = (c.transposed ? c.CO : c.CI) * c.KH * c.KW;
  const yShape = [c.B, c.CO, OH, OW];
  return {
    x: rand(c.B * c.CI * c.IH * c.IW, seed),
    w: rand(c.CI * c.CO * c.KH * c.KW, seed + 1, 1 / Math.sqrt(fan)),
    b: c.bias === false ? null : rand(c.CO, seed + 2, 0.5),
    dy: rand(prod(yShape), seed + 3),
    yShape,
  };
}

/** Float64 forward and gradients (through the ReLU when the case fuses one). */
export function reference(c: ConvCase, d: ConvData) {
  const g = refGeom(c);
  let y = c.transposed ? refConvT2d(d.x, d.w, d.b, g) : refConv2d(d.x, d.w, d.b, g as RefConv);
  let dy: ArrayLike<number> = d.dy;
  if (c.relu) {
    y = y.map((v) => Math.max(v, 0));
    dy = Float64Array.from(d.dy, (v, i) => (y[i] > 0 ? v : 0));
  }
  const grads = c.transposed ? refConvT2dGrads(d.x, d.w, dy, g) : refConv2dGrads(d.x, d.w, dy, g as RefConv);
  return { y, ...grads };
}

/** Case c through the engine's conv2d or convTranspose2d. */
export function applyConv(c: ConvCase, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const opts = { stride: c.stride, padding: c.padding, activation: c.relu ? ('relu' as const) : null };
  return c.transposed ? C.convTranspose2d(x, w, b, { ...opts, outputPadding: c.outputPadding }) : C.conv2d(x, w, b, opts);
}

// ---- The seed model's layers (SPEC section 1) at batch 2, full spatial size.

export const SEED: ConvCase[] = [
  { name: 'enc conv1 3->64 k4 s2 p1 + relu', transposed: false, B: 2, CI: 3, IH: 64, IW: 64, CO: 64, KH: 4, KW: 4, stride: 2, padding: 1, relu: true },
  { name: 'enc conv2 64->128 k4 s2 p1 + relu', transposed: false, B: 2, CI: 64, IH: 32, IW: 32, CO: 128, KH: 4, KW: 4, stride: 2, padding: 1, relu: true },
  { name: 'enc conv3 128->128 k3 p1', transposed: false, B: 2, CI: 128, IH: 16, IW: 16, CO: 128, KH: 3, KW: 3, padding: 1 },
  { name: 'residual 3x3 128->32 p1, no bias, + relu', transposed: false, B: 2, CI: 128, IH: 16, IW: 16, CO: 32, KH: 3, KW: 3, padding: 1, bias: false, relu: true },
  { name: 'residual 1x1 32->128, no bias', transposed: false, B: 2, CI: 32, IH: 16, IW: 16, CO: 128, KH: 1, KW: 1, bias: false },
  { name: 'pre-vq 1x1 128->64', transposed: false, B: 2, CI: 128, IH: 16, IW: 16, CO: 64, KH: 1, KW: 1 },
  { name: 'dec conv1 64->128 k3 p1', transposed: false, B: 2, CI: 64, IH: 16, IW: 16, CO: 128, KH: 3, KW: 3, padding: 1 },
  { name: 'dec convT1 128->64 k4 s2 p1 + relu', transposed: true, B: 2, CI: 128, IH: 16, IW: 16, CO: 64, KH: 4, KW: 4, stride: 2, padding: 1, relu: true },
  { name: 'dec convT2 64->3 k4 s2 p1', transposed: true, B: 2, CI: 64, IH: 32, IW: 32, CO: 3, KH: 4, KW: 4, stride: 2, padding: 1 },
];

/**
 * A seed layer with its spatial size cut down for finite differences: channels, kernel, stride
 * and padding kept, and maps still 8 wide on the strided side so the same kernel variants run as
 * at full size. Without its ReLU: with thousands of outputs, f32 rounding of the loss and
 * pre-activations crossing 0 swamp central differences; the fused ReLU's gradient is checked
 * exactly against float64 at full size and by finite differences on a small awkward case.
 */
export function small(c: ConvCase): ConvCase {
  const n = c.stride === 2 && !c.transposed ? 16 : 8;
  return { ...c, IH: n, IW: n, relu: false, name: c.name.replace(' + relu', '') };
}

// ---- Awkward shapes: odd sizes, 1 and 3 channels, kernels wider than the input, no padding,
// strides 1, 2 and 3, non-square strides and paddings, output padding.
export const AWKWARD: ConvCase[] = [
  { name: 'odd 7x5, Cin 1, Cout 3, k3 p1', transposed: false, B: 2, CI: 1, IH: 7, IW: 5, CO: 3, KH: 3, KW: 3, padding: 1 },
  { name: 'Cin 3, Cout 1, k4 s2 p1 on 9x11', transposed: false, B: 2, CI: 3, IH: 9, IW: 11, CO: 1, KH: 4, KW: 4, stride: 2, padding: 1 },
  { name: 'kernel 5x5 wider than 3x4 input (p1)', transposed: false, B: 2, CI: 2, IH: 3, IW: 4, CO: 5, KH: 5, KW: 5, padding: 1 },
  { name: 'k6x2 s3x1 p2x0 on 11x6', transposed: false, B: 1, CI: 5, IH: 11, IW: 6, CO: 7, KH: 6, KW: 2, stride: [3, 1], padding: [2, 0] },
  { name: 'k3 s2 p0 odd 9x9, 1x1 output rows', transposed: false, B: 3, CI: 4, IH: 9, IW: 9, CO: 9, KH: 3, KW: 3, stride: 2 },
  { name: '1x1 s2 on odd 5x7 (taps skip rows)', transposed: false, B: 2, CI: 6, IH: 5, IW: 7, CO: 4, KH: 1, KW: 1, stride: 2 },
  { name: '1x1, Cin 5 (channel tail), 20 rows', transposed: false, B: 2, CI: 5, IH: 3, IW: 5, CO: 20, KH: 1, KW: 1 },
  { name: 'k7 on 1x1 input, p3', transposed: false, B: 2, CI: 3, IH: 1, IW: 1, CO: 3, KH: 7, KW: 7, padding: 3 },
  { name: 'T k4 s2 p1 op1, 5x3 -> 11x7, Cin 3 Cout 1', transposed: true, B: 2, CI: 3, IH: 5, IW: 3, CO: 1, KH: 4, KW: 4, stride: 2, padding: 1, outputPadding: 1 },
  { name: 'T k3 s2 p1 op1, Cout 17', transposed: true, B: 2, CI: 4, IH: 4, IW: 4, CO: 17, KH: 3, KW: 3, stride: 2, padding: 1, outputPadding: 1 },
  { name: 'T k3 s1 p0, odd 5x7, Cin 1', transposed: true, B: 2, CI: 1, IH: 5, IW: 7, CO: 3, KH: 3, KW: 3 },
  { name: 'T k1 s2 (phases with no taps)', transposed: true, B: 2, CI: 3, IH: 3, IW: 4, CO: 2, KH: 1, KW: 1, stride: 2, outputPadding: 1 },
  { name: 'T k5x2 s3x2 p1x0 op2x1', transposed: true, B: 1, CI: 2, IH: 3, IW: 4, CO: 5, KH: 5, KW: 2, stride: [3, 2], padding: [1, 0], outputPadding: [2, 1], relu: true },
  { name: '1x1, Cin 12, Cout 7 (input gradient: row quads, channel tail)', transposed: false, B: 2, CI: 12, IH: 5, IW: 6, CO: 7, KH: 1, KW: 1 },
  { name: '1x1, Cin 8, Cout 16 (weights read as stored)', transposed: false, B: 2, CI: 8, IH: 3, IW: 8, CO: 16, KH: 1, KW: 1 },
  { name: '1x1 s2, Cin 8, Cout 7 on 7x5 (phases no tap reaches)', transposed: false, B: 2, CI: 8, IH: 7, IW: 5, CO: 7, KH: 1, KW: 1, stride: 2 },
  { name: 'k2x8 p0x1 on 3x9 (weight gradient: two whole tap vec4s per kernel row)', transposed: false, B: 1, CI: 2, IH: 3, IW: 9, CO: 3, KH: 2, KW: 8, padding: [0, 1] },
];
