// Float64 CPU references for conv2d and convTranspose2d (PyTorch semantics, NCHW), written
// directly from the definitions, independently of the engine's GEMM formulation.

export interface RefConv {
  B: number;
  CI: number;
  IH: number;
  IW: number;
  CO: number;
  KH: number;
  KW: number;
  sy: number;
  sx: number;
  py: number;
  px: number;
}

export const convOut = (g: RefConv) => [
  Math.floor((g.IH + 2 * g.py - g.KH) / g.sy) + 1,
  Math.floor((g.IW + 2 * g.px - g.KW) / g.sx) + 1,
];

/**
 * Visits every (b, co, oy, ox, ci, ky, kx) term of a conv2d with x index xi and weight index wi,
 * skipping taps in the padding.
 */
function forEachTerm(g: RefConv, OH: number, OW: number, fn: (yi: number, xi: number, wi: number, co: number) => void): void {
  for (let b = 0; b < g.B; b++)
    for (let co = 0; co < g.CO; co++)
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          const yi = ((b * g.CO + co) * OH + oy) * OW + ox;
          for (let ci = 0; ci < g.CI; ci++)
            for (let ky = 0; ky < g.KH; ky++) {
              const iy = oy * g.sy - g.py + ky;
              if (iy < 0 || iy >= g.IH) continue;
              for (let kx = 0; kx < g.KW; kx++) {
                const ix = ox * g.sx - g.px + kx;
                if (ix < 0 || ix >= g.IW) continue;
                fn(yi, ((b * g.CI + ci) * g.IH + iy) * g.IW + ix, ((co * g.CI + ci) * g.KH + ky) * g.KW + kx, co);
              }
            }
        }
}

/** y = conv2d(x, w) + bias: x [B, CI, IH, IW], w [CO, CI, KH, KW]. */
export function refConv2d(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, g: RefConv): Float64Array {
  const [OH, OW] = convOut(g);
  const y = new Float64Array(g.B * g.CO * OH * OW);
  if (bias) for (let i = 0; i < y.length; i++) y[i] = bias[Math.floor(i / (OH * OW)) % g.CO];
  forEachTerm(g, OH, OW, (yi, xi, wi) => (y[yi] += x[xi] * w[wi]));
  return y;
}

/** Gradients of sum(conv2d(x, w, bias) * dy) with respect to x, w and bias. */
export function refConv2dGrads(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, g: RefConv) {
  const [OH, OW] = convOut(g);
  const dx = new Float64Array(g.B * g.CI * g.IH * g.IW);
  const dw = new Float64Array(g.CO * g.CI * g.KH * g.KW);
  const db = new Float64Array(g.CO);
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / (OH * OW)) % g.CO] += dy[i];
  forEachTerm(g, OH, OW, (yi, xi, wi) => {
    dx[xi] += dy[yi] * w[wi];
    dw[wi] += dy[yi] * x[xi];
  });
  return { dx, dw, db };
}

export interface RefConvT extends RefConv {
  oy: number;
  ox: number;
}

/** The conv2d whose input gradient a convTranspose2d is: its x is the convT output. */
function asConv(g: RefConvT): RefConv {
  const OH = (g.IH - 1) * g.sy - 2 * g.py + g.KH + g.oy;
  const OW = (g.IW - 1) * g.sx - 2 * g.px + g.KW + g.ox;
  return { B: g.B, CI: g.CO, IH: OH, IW: OW, CO: g.CI, KH: g.KH, KW: g.KW, sy: g.sy, sx: g.sx, py: g.py, px: g.px };
}

export const convTOut = (g: RefConvT) => {
  const c = asConv(g);
  return [c.IH, c.IW];
};

/**
 * y = convTranspose2d(x, w) + bias: x [B, CI, IH, IW], w [CI, CO, KH, KW], scattering each
 * input element through the kernel (y[o * s - p + k] += x[o] * w[k]).
 */
export function refConvT2d(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, g: RefConvT): Float64Array {
  const [OH, OW] = convTOut(g);
  const y = new Float64Array(g.B * g.CO * OH * OW);
  if (bias) for (let i = 0; i < y.length; i++) y[i] = bias[Math.floor(i / (OH * OW)) % g.CO];
  for (let b = 0; b < g.B; b++)
    for (let ci = 0; ci < g.CI; ci++)
      for (let iy = 0; iy < g.IH; iy++)
        for (let ix = 0; ix < g.IW; ix++) {
          const xv = x[((b * g.CI + ci) * g.IH + iy) * g.IW + ix];
          for (let co = 0; co < g.CO; co++)
            for (let ky = 0; ky < g.KH; ky++) {
              const oy = iy * g.sy - g.py + ky;
              if (oy < 0 || oy >= OH) continue;
              for (let kx = 0; kx < g.KW; kx++) {
                const ox = ix * g.sx - g.px + kx;
                if (ox < 0 || ox >= OW) continue;
                y[((b * g.CO + co) * OH + oy) * OW + ox] += xv * w[((ci * g.CO + co) * g.KH + ky) * g.KW + kx];
              }
            }
        }
  return y;
}

/** Gradients of sum(convTranspose2d(x, w, bias) * dy) with respect to x, w and bias. */
export function refConvT2dGrads(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, g: RefConvT) {
  const [OH, OW] = convTOut(g);
  const dx = new Float64Array(g.B * g.CI * g.IH * g.IW);
  const dw = new Float64Array(g.CI * g.CO * g.KH * g.KW);
  const db = new Float64Array(g.CO);
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / (OH * OW)) % g.CO] += dy[i];
  for (let b = 0; b < g.B; b++)
    for (let ci = 0; ci < g.CI; ci++)
      for (let iy = 0; iy < g.IH; iy++)
        for (let ix = 0; ix < g.IW; ix++) {
          const xi = ((b * g.CI + ci) * g.IH + iy) * g.IW + ix;
          for (let co = 0; co < g.CO; co++)
            for (let ky = 0; ky < g.KH; ky++) {
              const oy = iy * g.sy - g.py + ky;
              if (oy < 0 || oy >= OH) continue;
              for (let kx = 0; kx < g.KW; kx++) {
                const ox = ix * g.sx - g.px + kx;
                if (ox < 0 || ox >= OW) continue;
                const yi = ((b * g.CO + co) * OH + oy) * OW + ox;
                const wi = ((ci * g.CO + co) * g.KH + ky) * g.KW + kx;
                dx[xi] += dy[yi] * w[wi];
                dw[wi] += dy[yi] * x[xi];
              }
            }
        }
  return { dx, dw, db };
}

export { asConv as convTAsConv };
