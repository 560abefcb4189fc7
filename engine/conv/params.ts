// The uniform parameter blocks of shaders/conv.wgsl, declared once by name and type: the WGSL
// struct fills each section's {{PARAMS}} and `pack` fills the block at launch.
import { paramBlock } from '../kernel.js';

/** conv_reg. */
export const CONV_REG_PARAMS = paramBlock({
  B: 'u32', KIN: 'u32', IH: 'u32', IW: 'u32',
  ROWS: 'u32', QH: 'u32', QW: 'u32', NG: 'u32',
  OH: 'u32', OW: 'u32', OSY: 'u32', OSX: 'u32',
  OPY: 'u32', OPX: 'u32', SY: 'u32', KSTEPS: 'u32',
  OFFY: 'i32', OFFX: 'i32', NPOS: 'u32', KSTRIDE: 'u32',
  KITERS: 'u32', TY: 'u32', HAS_BIAS: 'u32', RELU: 'u32',
}, 4);

/** conv_smem. */
export const CONV_SMEM_PARAMS = paramBlock({
  B: 'u32', KIN: 'u32', IH: 'u32', IW: 'u32',
  ROWS: 'u32', QH: 'u32', QW: 'u32', MTOT: 'u32',
  OH: 'u32', OW: 'u32', OSY: 'u32', OSX: 'u32',
  OPY: 'u32', OPX: 'u32', SY: 'u32', SX: 'u32',
  OFFY: 'i32', OFFX: 'i32', TY: 'u32', TX: 'u32',
  KTOT: 'u32', TXP: 'u32', KINP: 'u32', _pad: 'u32',
}, 4);

/** convw_reg and convw_rows. */
export const WGRAD_REG_PARAMS = paramBlock({
  B: 'u32', KIN: 'u32', IH: 'u32', IW: 'u32',
  ROWS: 'u32', QH: 'u32', QW: 'u32', NGI: 'u32',
  TY: 'u32', NCG: 'u32', SY: 'u32', CHUNK: 'u32',
  OFFY: 'i32', OFFX: 'i32', KITERS: 'u32', _pad: 'u32',
}, 4);

/** convw_smem. */
export const WGRAD_SMEM_PARAMS = paramBlock({
  B: 'u32', KIN: 'u32', IH: 'u32', IW: 'u32',
  ROWS: 'u32', QH: 'u32', QW: 'u32', NCOL: 'u32',
  TY: 'u32', TX: 'u32', SY: 'u32', SX: 'u32',
  OFFY: 'i32', OFFX: 'i32', CHUNK: 'u32', MTOT: 'u32',
  TXP: 'u32', PSTRIDE: 'u32', _p0: 'u32', _p1: 'u32',
}, 4);

/** pack. */
export const PACK_PARAMS = paramBlock({
  ROWS: 'u32', ROWSP: 'u32', KIN: 'u32', KINP: 'u32',
  TY: 'u32', TX: 'u32', TXP: 'u32', KH: 'u32',
  KW: 'u32', KY0: 'u32', KX0: 'u32', TSY: 'u32',
  TSX: 'u32', KINMAJOR: 'u32', CHAN: 'u32', TOTAL: 'u32',
}, 4);

/** wsum (N4: vec4s of one chunk's partial sums, S: chunks). */
export const WSUM_PARAMS = paramBlock({ N4: 'u32', S: 'u32', _p0: 'u32', _p1: 'u32' });

/** bias_grad. */
export const BIAS_GRAD_PARAMS = paramBlock({ B: 'u32', C: 'u32', HW: 'u32', _pad: 'u32' });
