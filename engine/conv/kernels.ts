// Every conv kernel, as (generator, specialisation): the cache key comes from the
// specialisation values (engine/kernel.ts), the WGSL from shaders/conv.wgsl and the emitters.
// A kernel's `storage` (ConvStorage, ./plan.ts) is the element type of its activations: f16
// loads convert to f32 where they happen (the placeholders X_XI, A_AT, W_SRC, G_AT name those
// loads in the shader), sums are f32, and f16 outputs convert once at the store (Y_V); for f32
// the placeholders fill in the plain loads, so the f32 kernels are unchanged.
import { withGemmTile } from '../gemm_tile.js';
import { kernel } from '../kernel.js';
import type { Kernel } from '../runtime.js';
import { wgslKernel } from '../shaders.js';
import { asF32, asVec4f, bindings, comp, enables, scalarArray, storedScalar, vec4Array, type ElementType } from './emit_common.js';
import { regConvCode } from './emit_conv.js';
import { regWgradCode, regWgradRowsCode } from './emit_wgrad.js';
import { BIAS_GRAD_PARAMS, CONV_SMEM_PARAMS, PACK_PARAMS, WGRAD_SMEM_PARAMS, WSUM_PARAMS } from './params.js';
import type { ConvStorage, RegConv, RegWgrad, RegWgradRows } from './plan.js';

export const regConvKernel = (v: RegConv): Kernel => kernel('conv.reg', { ...v }, regConvCode as (s: object) => string);
export const regWgradKernel = (v: RegWgrad): Kernel => kernel('convw.reg', { ...v }, regWgradCode as (s: object) => string);
export const rowsWgradKernel = (v: RegWgradRows): Kernel => kernel('convw.rows', { ...v }, regWgradRowsCode as (s: object) => string);

export const smemConvKernel = (DIR: 1 | -1, bias: boolean, relu: boolean, storage: ConvStorage = 'f32'): Kernel =>
  kernel('conv.smem', { DIR, bias, relu, storage }, () => {
    const binds: [string, string][] = [['X', scalarArray(storage)], ['Wp', 'array<f32>']];
    if (bias) binds.push(['bias', scalarArray(storage)]);
    binds.push(['Y', scalarArray(storage)]);
    return withGemmTile(wgslKernel('conv', 'conv_smem', {
      ENABLE: enables(storage, false),
      PARAMS: CONV_SMEM_PARAMS.wgsl,
      BINDINGS: bindings(binds),
      DIR: DIR === 1 ? '1' : '-1',
      X_XI: asF32(storage, 'X[xi]'),
      BIAS_ADD: bias ? ` + ${asF32(storage, 'bias[row]')}` : '',
      ACT: relu ? 'v = max(v, 0.0);' : '',
      Y_V: storedScalar(storage, 'v'),
    }));
  });

export const smemWgradKernel = (storage: ConvStorage = 'f32'): Kernel =>
  kernel('convw.smem', { storage }, () =>
    withGemmTile(wgslKernel('conv', 'convw_smem', {
      ENABLE: enables(storage, false),
      PARAMS: WGRAD_SMEM_PARAMS.wgsl,
      BINDINGS: bindings([['A', scalarArray(storage)], ['X', scalarArray(storage)], ['P', 'array<f32>']]),
      X_XI: asF32(storage, 'X[xi]'),
      A_AT: asF32(storage, 'A[((q.x * p.ROWS + min(lm, p.ROWS - 1u)) * p.QH + q.y) * p.QW + q.z]'),
    })),
  );

/**
 * The weight repack for TXP taps per row, TY rows and KINP channels (the index divisors, baked
 * in), from weights stored as `W` (f16 weights convert: the packed weights are f32).
 */
export const packKernel = (TXP: number, TY: number, KINP: number, W: ElementType = 'f32'): Kernel =>
  // KIN4 is used only in chan mode (KINP a multiple of 4 there); the other branch must still compile.
  kernel('conv.pack', { TXP, TY, KINP, W }, () =>
    wgslKernel('conv', 'pack', {
      ENABLE: enables(W, false), PARAMS: PACK_PARAMS.wgsl, TXP, TY, KINP, KIN4: Math.ceil(KINP / 4),
      W_ARRAY: scalarArray(W), W_SRC: asF32(W, 'W[min(src, arrayLength(&W) - 1u)]'),
    }));

/** The chunk-sum kernel for kernel rows of KW taps padded to G vec4s (dW is whole vec4s when KW = 4 G). */
export const wsumKernel = (G: number, KW: number): Kernel =>
  kernel('conv.wsum', { G, KW }, () => {
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
    return wgslKernel('conv', 'wsum', { ENABLE: '', PARAMS: WSUM_PARAMS.wgsl, OUT: KW === 4 * G ? 'vec4f' : 'f32', STORE: store });
  });

/** Per-channel sums (f32) of a gradient stored as `G`; v4: a channel's positions are whole vec4s. */
export const biasGradKernel = (v4: boolean, G: ElementType = 'f32'): Kernel =>
  kernel('conv.bias_grad', { v4, G }, () =>
    wgslKernel('conv', 'bias_grad', {
      ENABLE: enables(G, false), PARAMS: BIAS_GRAD_PARAMS.wgsl, T: v4 ? 'vec4f' : 'f32', SUM: v4 ? 's.x + s.y + s.z + s.w' : 's',
      G_ARRAY: v4 ? vec4Array(G) : scalarArray(G), G_AT: (v4 ? asVec4f : asF32)(G, 'G[base + i]'),
    }));
