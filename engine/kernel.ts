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

/** Section `section` of shaders/<file>.wgsl with its placeholders filled from `values`. */
export function shaderKernel(file: string, section: string, values: Spec = {}, name = `${file}.${section}`): Kernel {
  return kernel(name, values, (v) => wgslKernel(file, section, v as Record<string, string | number>));
}

export type ParamType = 'u32' | 'i32' | 'f32';

export interface ParamBlock<F extends Record<string, ParamType>> {
  /** `struct Params { ... }` in WGSL. */
  wgsl: string;
  /** The block's bytes; fields whose name starts with '_' are padding (zero) and optional. */
  pack(values: { [K in keyof F as K extends `_${string}` ? never : K]: number | boolean }): Uint32Array;
}

/**
 * A uniform parameter block: `fields` in declaration order (each 4 bytes). `perLine` lays the
 * struct out that many fields per line (default: all on one line).
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
  return {
    wgsl,
    pack(values) {
      const u = new Uint32Array(names.length);
      const i = new Int32Array(u.buffer);
      const f = new Float32Array(u.buffer);
      const given = values as Record<string, number | boolean>;
      names.forEach((n, j) => {
        const v = given[n];
        if (v === undefined) {
          if (n.startsWith('_')) return;
          throw new Error(`paramBlock: no value for ${n}`);
        }
        const x = typeof v === 'boolean' ? +v : v;
        if (fields[n] === 'f32') f[j] = x;
        else if (fields[n] === 'i32') i[j] = x;
        else u[j] = x;
      });
      return u;
    },
  };
}
