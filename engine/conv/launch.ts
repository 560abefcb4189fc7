// Launchers: each takes a plan (./plan.ts) and records its dispatches. Nothing here decides a
// variant or a tile; it allocates, repacks, fills parameter blocks by name and dispatches.
import { type Binding, grid1d, rt } from '../runtime.js';
import { Tensor, empty } from '../tensor.js';
import { regConvWindow } from './emit_conv.js';
import { regWgradRowsWindow, regWgradWindow } from './emit_wgrad.js';
import type { ConvPass } from './geometry.js';
import { biasGradKernel, packKernel, regConvKernel, regWgradKernel, rowsWgradKernel, smemConvKernel, smemWgradKernel, wsumKernel } from './kernels.js';
import { BIAS_GRAD_PARAMS, CONV_REG_PARAMS, CONV_SMEM_PARAMS, PACK_PARAMS, WGRAD_REG_PARAMS, WGRAD_SMEM_PARAMS, WSUM_PARAMS } from './params.js';
import type { ConvPassPlan, ConvStorage, WgradPlan } from './plan.js';

/** Throws unless every operand is stored as the plan's `storage` says. */
function checkStorage(what: string, storage: ConvStorage, operands: Record<string, Tensor | null>): void {
  for (const [name, t] of Object.entries(operands)) {
    if (t && t.dtype !== storage) throw new Error(`${what}: ${name} is ${t.describe()}, but the plan is for ${storage} operands`);
  }
}

/** Grid for `tiles` position tiles (over x, and z beyond 65535) by `rowTiles` row tiles (y). */
function tileGrid(tiles: number, rowTiles: number): [number, number, number] {
  const z = Math.ceil(tiles / 65535);
  return [Math.ceil(tiles / z), rowTiles, z];
}

/** Repacks `w` for `pass`: rows padded to rowsPadded, kernel rows to txp taps, chan: channels in fours. */
function packWeights(w: Tensor, pass: ConvPass, rowsPadded: number, chan: boolean, txp: number): Tensor {
  const kinp = chan ? Math.ceil(pass.KIN / 4) * 4 : pass.KIN;
  const total = rowsPadded * kinp * pass.TY * txp;
  const out = empty([total]);
  const u = PACK_PARAMS.pack({
    ROWS: pass.ROWS, ROWSP: rowsPadded, KIN: pass.KIN, KINP: kinp, TY: pass.TY, TX: pass.TX, TXP: txp, KH: pass.KH,
    KW: pass.KW, KY0: pass.KY0, KX0: pass.KX0, TSY: pass.TSY, TSX: pass.TSX, KINMAJOR: pass.kinMajor, CHAN: chan, TOTAL: total,
  });
  rt().dispatch(packKernel(txp, pass.TY, kinp, w.dtype === 'f16' ? 'f16' : 'f32'), [w.buffer, out.buffer], u, grid1d(Math.ceil(total / 256)));
  return out;
}

/** Runs one conv-kernel pass into `y` (all of y's positions of this pass are written). */
export function runConvPass(x: Tensor, w: Tensor, bias: Tensor | null, y: Tensor, plan: ConvPassPlan, relu: boolean): void {
  const pass = plan.pass;
  checkStorage('conv', plan.kind === 'smem' ? plan.storage : plan.v.storage, { x, w, bias, y });
  const common = {
    B: pass.B, KIN: pass.KIN, IH: pass.IH, IW: pass.IW, ROWS: pass.ROWS, QH: pass.QH, QW: pass.QW,
    OH: pass.OH, OW: pass.OW, OSY: pass.OSY, OSX: pass.OSX, OPY: pass.OPY, OPX: pass.OPX, SY: pass.SY,
    OFFY: pass.OFFY, OFFX: pass.OFFX, TY: pass.TY,
  };
  if (plan.kind === 'smem') {
    const wp = packWeights(w, pass, pass.ROWS, false, pass.TX);
    const MTOT = pass.B * pass.QH * pass.QW;
    const u = CONV_SMEM_PARAMS.pack({ ...common, MTOT, SX: pass.SX, TX: pass.TX, KTOT: pass.KIN * pass.TY * pass.TX, TXP: pass.TX, KINP: pass.KIN });
    const buffers = [x.buffer, wp.buffer, ...(bias ? [bias.buffer] : []), y.buffer];
    rt().dispatch(smemConvKernel(plan.DIR, !!bias, relu, plan.storage), buffers, u, tileGrid(Math.ceil(MTOT / 64), Math.ceil(pass.ROWS / 64)));
    wp.dispose();
    return;
  }
  const v = plan.v;
  const chan = v.mode === 'chan';
  const wp = plan.weights === 'pack' ? packWeights(w, pass, plan.rowsPadded, chan, plan.packTXP) : w;
  const u = CONV_REG_PARAMS.pack({
    ...common, NG: plan.NG, KSTEPS: plan.ksteps, NPOS: plan.NPOS, KSTRIDE: chan ? 4 : 1,
    KITERS: plan.noTaps ? 0 : plan.ksteps * pass.TY, HAS_BIAS: !!bias, RELU: relu,
  });
  const window = regConvWindow(v);
  if (v.uniformW * 16 > wp.buffer.size) throw new Error(`conv: planned a ${v.uniformW * 16}-byte uniform binding of a ${wp.buffer.size}-byte weight buffer`);
  // X and X4 (one buffer as scalars and as vec4s) are bound only when the kernel reads them.
  const buffers = [
    ...(window.scalarD.length ? [x.buffer] : []),
    ...(window.chunks.length ? [x.buffer] : []),
    v.uniformW ? { buffer: wp.buffer, size: v.uniformW * 16 } : wp.buffer,
    (bias ?? wp).buffer, // unread without a bias (HAS_BIAS = 0)
    y.buffer,
  ];
  rt().dispatch(regConvKernel(v), buffers, u, tileGrid(Math.ceil(plan.NPOS / 8), plan.rowsPadded / v.R));
  if (wp !== w) wp.dispose();
}

/**
 * The weight gradient dW [ROWS, KIN, KH, KW] = sum over positions of A[b, row, q] * X[b, kin,
 * q * s + k - p]: partial sums per chunk of positions, then wsum adds the chunks in order.
 */
export function runWgrad(a: Tensor, x: Tensor, plan: WgradPlan): Tensor {
  const pass = plan.pass;
  checkStorage('conv weight gradient', plan.kind === 'smem' ? plan.storage : plan.v.storage, { a, x });
  const dw = empty([pass.ROWS, pass.KIN, pass.KH, pass.KW]);
  const TXP = 4 * plan.G;
  const NCOLP = pass.KIN * pass.KH * TXP; // columns of a partial-sum row (taps padded to TXP)
  const P = empty([plan.S * pass.ROWS * NCOLP]);
  const common = { B: pass.B, KIN: pass.KIN, IH: pass.IH, IW: pass.IW, ROWS: pass.ROWS, QH: pass.QH, QW: pass.QW, SY: pass.SY, OFFY: pass.OFFY, OFFX: pass.OFFX, CHUNK: plan.chunk };
  if (plan.kind === 'smem') {
    const u = WGRAD_SMEM_PARAMS.pack({ ...common, NCOL: plan.NCOL, TY: pass.KH, TX: pass.KW, SX: pass.SX, MTOT: plan.MTOT, TXP, PSTRIDE: pass.ROWS * NCOLP });
    rt().dispatch(smemWgradKernel(plan.storage), [a.buffer, x.buffer, P.buffer], u, [Math.ceil(pass.ROWS / 64), Math.ceil(plan.NCOL / 64), plan.S]);
  } else {
    const v = plan.v;
    const [k, window] = plan.kind === 'rows' ? [rowsWgradKernel(plan.v), regWgradRowsWindow(plan.v)] : [regWgradKernel(plan.v), regWgradWindow(plan.v)];
    const u = WGRAD_REG_PARAMS.pack({ ...common, NGI: plan.NGI, TY: pass.KH, NCG: plan.NCG, KITERS: plan.KITERS });
    // Textures are filled (a copy each) just before the dispatch: they are scratch, slot by slot.
    const operand = (t: Tensor, tex: boolean, slot: number): Binding => (tex ? rt().vec4Texture(t.buffer, t.size / 4, slot) : t.buffer);
    const buffers = [
      operand(a, v.texA, 0),
      ...(window.scalarD.length ? [x.buffer] : []),
      ...(window.chunks.length ? [operand(x, v.texX, 1)] : []),
      P.buffer,
    ];
    rt().dispatch(k, buffers, u, [plan.tiles[0], plan.tiles[1], plan.S]);
  }
  const N4 = (pass.ROWS * NCOLP) / 4; // vec4s of one chunk's partial sums
  rt().dispatch(wsumKernel(plan.G, pass.KW), [P.buffer, dw.buffer], WSUM_PARAMS.pack({ N4, S: plan.S }), grid1d(Math.ceil(N4 / 256)));
  P.dispose();
  return dw;
}

/** Per-channel sum (f32) of g [B, C, H, W] (f32 or f16) over batch and positions. */
export function biasGrad(g: Tensor): Tensor {
  const [B, C, H, W] = g.shape;
  const db = empty([C]);
  const v4 = (H * W) % 4 === 0;
  if (g.dtype !== 'f32' && g.dtype !== 'f16') throw new Error(`conv bias gradient: expected an f32 or f16 gradient, got ${g.describe()}`);
  rt().dispatch(biasGradKernel(v4, g.dtype), [g.buffer, db.buffer], BIAS_GRAD_PARAMS.pack({ B, C, HW: v4 ? (H * W) / 4 : H * W }), [C, 1, 1]);
  return db;
}
