// Every conv kernel, as (generator, specialisation): the cache key comes from the
// specialisation values (engine/kernel.ts), the WGSL from shaders/conv.wgsl and the emitters.
import { kernel } from '../kernel.js';
import type { Kernel } from '../runtime.js';
import { wgslKernel } from '../shaders.js';
import { bindings, comp } from './emit_common.js';
import { regConvCode } from './emit_conv.js';
import { regWgradCode, regWgradRowsCode } from './emit_wgrad.js';
import { BIAS_GRAD_PARAMS, CONV_SMEM_PARAMS, PACK_PARAMS, WGRAD_SMEM_PARAMS, WSUM_PARAMS } from './params.js';
import type { RegConv, RegWgrad, RegWgradRows } from './plan.js';

export const regConvKernel = (v: RegConv): Kernel => kernel('conv.reg', { ...v }, regConvCode as (s: object) => string);
export const regWgradKernel = (v: RegWgrad): Kernel => kernel('convw.reg', { ...v }, regWgradCode as (s: object) => string);
export const rowsWgradKernel = (v: RegWgradRows): Kernel => kernel('convw.rows', { ...v }, regWgradRowsCode as (s: object) => string);

export const smemConvKernel = (DIR: 1 | -1, bias: boolean, relu: boolean): Kernel =>
  kernel('conv.smem', { DIR, bias, relu }, () => {
    const binds: [string, string][] = [['X', 'array<f32>'], ['Wp', 'array<f32>']];
    if (bias) binds.push(['bias', 'array<f32>']);
    binds.push(['Y', 'array<f32>']);
    return wgslKernel('conv', 'conv_smem', {
      ENABLE: '',
      PARAMS: CONV_SMEM_PARAMS.wgsl,
      BINDINGS: bindings(binds),
      DIR: DIR === 1 ? '1' : '-1',
      BIAS_ADD: bias ? ' + bias[row]' : '',
      ACT: relu ? 'v = max(v, 0.0);' : '',
    });
  });

export const smemWgradKernel = (): Kernel =>
  kernel('convw.smem', {}, () =>
    wgslKernel('conv', 'convw_smem', {
      ENABLE: '',
      PARAMS: WGRAD_SMEM_PARAMS.wgsl,
      BINDINGS: bindings([['A', 'array<f32>'], ['X', 'array<f32>'], ['P', 'array<f32>']]),
    }),
  );

/** The weight repack for TXP taps per row, TY rows and KINP channels (the index divisors, baked in). */
export const packKernel = (TXP: number, TY: number, KINP: number): Kernel =>
  // KIN4 is used only in chan mode (KINP a multiple of 4 there); the other branch must still compile.
  kernel('conv.pack', { TXP, TY, KINP }, () =>
    wgslKernel('conv', 'pack', { ENABLE: '', PARAMS: PACK_PARAMS.wgsl, TXP, TY, KINP, KIN4: Math.ceil(KINP / 4) }));

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

/** Per-channel sums; v4: a channel's positions are whole vec4s. */
export const biasGradKernel = (v4: boolean): Kernel =>
  kernel('conv.bias_grad', { v4 }, () =>
    wgslKernel('conv', 'bias_grad', { ENABLE: '', PARAMS: BIAS_GRAD_PARAMS.wgsl, T: v4 ? 'vec4f' : 'f32', SUM: v4 ? 's.x + s.y + s.z + s.w' : 's' }));
