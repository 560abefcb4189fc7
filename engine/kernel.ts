// One way to make a kernel: a generator name plus its specialisation values. The cache key is
// derived from those values (never written by hand), so two launches asking for the same
// specialisation share one Kernel object and one compiled pipeline. `paramBlock` declares a
// kernel's uniform parameters once, by name and type, and gives both the WGSL struct and the
// packing, so no launcher fills a parameter block by position.
import type { Kernel } from './runtime.js';
import { wgslKernel } from './shaders.js';

export type SpecValue = string | number | boolean;
export type Spec = Readonly<Record<string, SpecValue>>;

const cache = new Map<string, Kernel>();

/** The cache key of `spec` under generator `name`: the name, then every value by sorted key. */
export function specKey(name: string, spec: Spec): string {
  return [name, ...Object.keys(spec).sort().map((k) => `${k}=${spec[k]}`)].join('|');
}

/**
 * The kernel `name` specialised by `spec`; `code(spec)` builds its WGSL (lazily, once). `name`
 * identifies the generator: one name, one `code` function.
 */
export function kernel<S extends Spec>(name: string, spec: S, code: (spec: S) => string): Kernel {
  const key = specKey(name, spec);
  let k = cache.get(key);
  if (!k) {
    k = { name, key, code: () => code(spec) };
    cache.set(key, k);
  }
  return k;
}

/**
 * Section `section` of shaders/<file>.wgsl with its placeholders filled from `values`, and its
 * `{{PARAMS}}` from `params` (one block per section: the block is not part of the cache key).
 */
export function shaderKernel(file: string, section: string, values: Spec = {}, params?: ParamBlock<any>, name = `${file}.${section}`): Kernel {
  return kernel(name, values, (v) => wgslKernel(file, section, params ? { ...(v as Record<string, string | number>), PARAMS: params.wgsl } : (v as Record<string, string | number>)));
}

/**
 * `values` padded with 1s to `n` words, for an `array<vec4u, n / 4>` field holding the dims (or
 * strides) of up to n axes: the kernels loop over a constant rank, and unused axes are size 1.
 */
export function dimWords(values: readonly number[], n = 8): number[] {
  if (values.length > n) throw new Error(`dimWords: ${values.length} values for ${n} words`);
  return Array.from({ length: n }, (_, k) => (k < values.length ? values[k] : 1));
}

/** A field of a parameter block: a 4-byte scalar, or an array of vec4u (16-byte aligned). */
export type ParamType = 'u32' | 'i32' | 'f32' | `array<vec4u, ${number}>`;

/** What `pack` takes for a field: a number (or boolean), or an array's words (the rest are 0). */
type ParamValue<T> = T extends `array<${string}>` ? readonly number[] : number | boolean;

export interface ParamBlock<F extends Record<string, ParamType>> {
  /** `struct Params { ... }` in WGSL. */
  wgsl: string;
  /** The block's bytes; fields whose name starts with '_' are padding (zero) and optional. */
  pack(values: { [K in keyof F as K extends `_${string}` ? never : K]: ParamValue<F[K]> }): Uint32Array;
}

/**
 * A uniform parameter block: `fields` in declaration order (scalars 4 bytes each, arrays of
 * vec4u at 16-byte offsets). `perLine` lays the struct out that many fields per line (default:
 * all on one line).
 */
export function paramBlock<const F extends Record<string, ParamType>>(fields: F, perLine = 0): ParamBlock<F> {
  const names = Object.keys(fields);
  const decl = names.map((n) => `${n}: ${fields[n]}`);
  let wgsl: string;
  if (perLine > 0) {
    const lines: string[] = [];
    for (let i = 0; i < decl.length; i += perLine) lines.push(`  ${decl.slice(i, i + perLine).join(', ')},`);
    wgsl = `struct Params {\n${lines.join('\n')}\n}`;
  } else {
    wgsl = `struct Params { ${decl.join(', ')} }`;
  }
  // Word offset and size of each field.
  const at: number[] = [];
  let words = 0;
  for (const n of names) {
    const arr = /^array<vec4u, (\d+)>$/.exec(fields[n]);
    const size = arr ? 4 * Number(arr[1]) : 1;
    if (arr && words % 4 !== 0) throw new Error(`paramBlock: array field ${n} at byte ${4 * words}, not a multiple of 16`);
    at.push(words);
    words += size;
  }
  return {
    wgsl,
    pack(values) {
      const u = new Uint32Array(words);
      const i = new Int32Array(u.buffer);
      const f = new Float32Array(u.buffer);
      const given = values as Record<string, number | boolean | readonly number[]>;
      names.forEach((n, j) => {
        const v = given[n];
        if (v === undefined) {
          if (n.startsWith('_')) return;
          throw new Error(`paramBlock: no value for ${n}`);
        }
        if (typeof v === 'object') {
          const size = (at[j + 1] ?? words) - at[j];
          if (v.length > size) throw new Error(`paramBlock: ${v.length} values for ${n}, which holds ${size}`);
          u.set(v, at[j]);
          return;
        }
        const x = typeof v === 'boolean' ? +v : v;
        if (fields[n] === 'f32') f[at[j]] = x;
        else if (fields[n] === 'i32') i[at[j]] = x;
        else u[at[j]] = x;
      });
      return u;
    },
  };
}
