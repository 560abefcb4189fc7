// What the WGSL emitters share: binding declarations, names for window offsets, and the window
// plan (which input values a lane loads as aligned vec4s and which as scalars).
import { VEC4_TEXTURE_WIDTH } from '../runtime.js';

/**
 * Bindings in order (a type starting with 'uniform ' binds a uniform array; VEC4_TEXTURE, a
 * vec4 array held in a texture by Runtime.vec4Texture), then the params.
 */
export function bindings(list: [string, string][]): string {
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
export const VEC4_TEXTURE = 'vec4 texture';
/** WGSL for vec4 `index` of array `name`, bound as a storage buffer or (tex) a texture. */
export const vec4At = (name: string, index: string, tex: boolean) => (tex ? `${name}_at(${index})` : `${name}[${index}]`);

export const comp = ['x', 'y', 'z', 'w'];
/** WGSL identifier fragment for a possibly negative integer. */
export const id = (d: number) => (d < 0 ? `m${-d}` : `${d}`);
export const mod4 = (v: number) => ((v % 4) + 4) % 4;

// ---- reg: window plans

/**
 * How a lane loads its input window: offsets d (relative to an aligned base, see callers) that
 * fall in an aligned vec4 chunk with at least `minUsed` used values load as one vec4 (vecX
 * only; ax is the base's offset mod 4), the rest as scalars.
 */
export interface WindowPlan {
  chunks: number[];
  inChunk: Map<number, [number, number]>;
  scalarD: number[];
}

export function windowPlan(ds: Set<number>, vecX: boolean, ax: number, minUsed = 3): WindowPlan {
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


// ---- element types

/** The storage types of the conv kernels' operands ('f32' | 'f16'; see ConvStorage in ./plan.ts). */
export type ElementType = 'f32' | 'f16';

/** `enable` lines for f16 storage and/or subgroups ('' for f32 without subgroups). */
export function enables(storage: ElementType, subgroups: boolean): string {
  return [...(storage === 'f16' ? ['enable f16;'] : []), ...(subgroups ? ['enable subgroups;'] : [])].join('\n');
}

/** WGSL array type of scalars / vec4s stored as `storage`. */
export const scalarArray = (storage: ElementType) => (storage === 'f16' ? 'array<f16>' : 'array<f32>');
export const vec4Array = (storage: ElementType) => (storage === 'f16' ? 'array<vec4<f16>>' : 'array<vec4f>');

/** A load `expr` of a scalar (vec4) stored as `storage`, as f32 (vec4f); f32 loads are left as they are. */
export const asF32 = (storage: ElementType, expr: string) => (storage === 'f16' ? `f32(${expr})` : expr);
export const asVec4f = (storage: ElementType, expr: string) => (storage === 'f16' ? `vec4f(${expr})` : expr);

/** An f32 scalar (or vec4f) value `expr` as stored in `storage`. */
export const storedScalar = (storage: ElementType, expr: string) => (storage === 'f16' ? `f16(${expr})` : expr);
export const storedVec4 = (storage: ElementType, expr: string) => (storage === 'f16' ? `vec4<f16>(${expr})` : expr);
