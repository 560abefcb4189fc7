// Multi-tensor Adam: one dispatch updates many parameters (shaders/optim.wgsl, adam_multi),
// where a per-parameter step costs a dispatch each (host time per call, a launch on a GPU).
// The kernel is specialised by the number of parameters k: parameter j's four buffers bind at
// 4j..4j+3 and a table in the uniform maps each workgroup to its (parameter, chunk).
import { kernel, paramBlock } from './kernel.js';
import type { Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';

/** Parameters per dispatch at most: a bound on the emitted shader's length and compile time. */
const MAX_PER_DISPATCH = 32;
/** Elements per workgroup (adam_multi's @workgroup_size: one element per invocation). */
const WORKGROUP = 256;

/**
 * Parameters one dispatch can update with `maxStorageBuffers` storage buffers per shader stage:
 * four each (param, grad, m, v), plus the step scalars and, gated by loss scaling, its state.
 */
export function adamGroupSize(maxStorageBuffers: number, gated: boolean): number {
  const k = Math.floor((maxStorageBuffers - 1 - (gated ? 1 : 0)) / 4);
  if (k < 1) throw new Error(`multi-tensor Adam: ${maxStorageBuffers} storage buffers per shader stage are too few for one parameter`);
  return Math.min(k, MAX_PER_DISPATCH);
}

/** `items` in consecutive groups of at most `size` (the parameters of each dispatch). */
export function adamGroups<T>(items: readonly T[], size: number): T[][] {
  const groups: T[][] = [];
  for (let i = 0; i < items.length; i += size) groups.push(items.slice(i, i + size));
  return groups;
}

/** One parameter of a dispatch: its element count and its step-scalar index (see ADAM_PARAMS in optim.ts). */
export interface AdamMultiEntry {
  n: number;
  index: number;
}

/** The uniform of a k-parameter kernel: Adam's constants, then (n, index, first, end workgroup) per parameter. */
function multiParams(k: number) {
  return paramBlock({
    one_minus_beta1: 'f32', beta2: 'f32', one_minus_beta2: 'f32', eps: 'f32', weight_decay: 'f32', _p0: 'u32', _p1: 'u32', _p2: 'u32',
    table: `array<vec4u, ${k}>`,
  }, 4);
}
const paramBlocks = new Map<number, ReturnType<typeof multiParams>>();
function paramsFor(k: number): ReturnType<typeof multiParams> {
  let b = paramBlocks.get(k);
  if (!b) paramBlocks.set(k, (b = multiParams(k)));
  return b;
}

export interface AdamConstants {
  one_minus_beta1: number;
  beta2: number;
  one_minus_beta2: number;
  eps: number;
  weight_decay: number;
}

/** The uniform block and the workgroup count of one dispatch over `entries`. */
export function adamMultiLaunch(entries: readonly AdamMultiEntry[], c: AdamConstants): { params: Uint32Array; workgroups: number } {
  const table: number[] = [];
  let first = 0;
  for (const e of entries) {
    const end = first + Math.ceil(e.n / WORKGROUP);
    table.push(e.n, e.index, first, end);
    first = end;
  }
  return { params: paramsFor(entries.length).pack({ ...c, table }), workgroups: first };
}

/** The kernel updating k parameters; `gated`: loss scaling's unscale and skip (state bound after the step scalars). */
export function adamMultiKernel(k: number, gated: boolean): Kernel {
  return kernel('optim.adam_multi', { k, gated }, ({ k, gated }) => {
    const bindings: string[] = [];
    const updates: string[] = [];
    for (let j = 0; j < k; j++) {
      bindings.push(
        `@group(0) @binding(${4 * j}) var<storage, read_write> param${j}: array<f32>;`,
        `@group(0) @binding(${4 * j + 1}) var<storage, read> grad${j}: array<f32>;`,
        `@group(0) @binding(${4 * j + 2}) var<storage, read_write> m${j}: array<f32>;`,
        `@group(0) @binding(${4 * j + 3}) var<storage, read_write> v${j}: array<f32>;`,
      );
      updates.push(
        `  if (w < p.table[${j}].w) {`,
        `    let i = (w - p.table[${j}].z) * ${WORKGROUP}u + lid;`,
        `    if (i < p.table[${j}].x) {`,
        `      let u = adam_element(param${j}[i], grad${j}[i], m${j}[i], v${j}[i], p.table[${j}].y);`,
        `      m${j}[i] = u.m;`,
        `      v${j}[i] = u.v;`,
        `      param${j}[i] = u.x;`,
        '    }',
        '    return;',
        '  }',
      );
    }
    const scalars = 4 * k;
    return wgslKernel('optim', 'adam_multi', {
      PARAMS: paramsFor(k).wgsl,
      BINDINGS: bindings.join('\n'),
      SCALARS: scalars,
      STATE: gated ? `@group(0) @binding(${scalars + 1}) var<storage, read> state: LossScale;` : '',
      UNIFORM: scalars + (gated ? 2 : 1),
      UNSCALE: gated ? ' * state.inv_scale' : '',
      GUARD: gated ? 'if (state.found_inf != 0u) { return; }' : '',
      UPDATES: updates.join('\n'),
    });
  });
}
