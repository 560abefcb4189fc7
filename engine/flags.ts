// Every engine switch in one typed table: its name, its environment variable, its type, its
// default and one line of what it does. The engine reads switches only through `flags()`.
// Node fills them from the `VQ_*` environment once (engine/node.ts), a page from `setFlags`
// or its URL (`flagsFromUrl`); tests scope a setting with `withFlags`. README's table of
// variables is checked against this one (test/flags.test.ts).

interface FlagBase<T> {
  /** The environment variable (also accepted as a URL parameter). */
  env: string;
  default: T;
  /** One line for `--help`-like listings and README. */
  doc: string;
  /** Parses the text form (environment, URL); throws a one-line error naming the problem. */
  parse(text: string): T;
  /** Checks a typed value (setFlags); returns an error message or null. */
  check(value: unknown): string | null;
  /** The type as shown in listings. */
  type: string;
}

function enumFlag<const V extends string>(env: string, values: readonly V[], def: V, doc: string): FlagBase<V> {
  const type = values.map((v) => `'${v}'`).join(' | ');
  const check = (v: unknown) => (values.includes(v as V) ? null : `must be one of ${values.join(', ')}, got '${String(v)}'`);
  return {
    env,
    default: def,
    doc,
    type,
    check,
    parse(text) {
      const v = text === '' ? def : text;
      const err = check(v);
      if (err) throw new Error(`${env} ${err}`);
      return v as V;
    },
  };
}

function boolFlag(env: string, def: boolean, doc: string): FlagBase<boolean> {
  return {
    env,
    default: def,
    doc,
    type: 'boolean',
    check: (v) => (typeof v === 'boolean' ? null : `must be true or false, got ${JSON.stringify(v)}`),
    parse(text) {
      const t = text.trim().toLowerCase();
      if (t === '') return def;
      if (t === '1' || t === 'true' || t === 'yes' || t === 'on') return true;
      if (t === '0' || t === 'false' || t === 'no' || t === 'off') return false;
      throw new Error(`${env} must be 0 or 1 (or true/false), got '${text}'`);
    },
  };
}

function intFlag(env: string, def: number, min: number, max: number, doc: string): FlagBase<number> {
  const check = (v: unknown) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? null : `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`;
  return {
    env,
    default: def,
    doc,
    type: 'integer',
    check,
    parse(text) {
      if (text.trim() === '') return def;
      const v = Number(text);
      const err = check(v);
      if (err) throw new Error(`${env} ${err.replace(/got .*/, `got '${text}'`)}`);
      return v;
    },
  };
}

function textFlag(env: string, pattern: RegExp, what: string, doc: string): FlagBase<string> {
  const check = (v: unknown) => (typeof v === 'string' && (v === '' || pattern.test(v)) ? null : `must be ${what}, got ${JSON.stringify(v)}`);
  return {
    env,
    default: '',
    doc,
    type: 'string',
    check,
    parse(text) {
      const err = check(text);
      if (err) throw new Error(`${env} ${err}`);
      return text;
    },
  };
}

const SCHEDULES = ['auto', 'reg', 'smem'] as const;

/** The switches. Adding one here is all it takes to make it settable everywhere. */
export const FLAG_SPECS = {
  adapter: textFlag('VQ_ADAPTER', /^.+$/, 'a substring of an adapter name', 'Node: substring of the adapter name to use (Dawn\'s `adapter=`)'),
  backend: enumFlag('VQ_BACKEND', ['', 'vulkan', 'metal', 'd3d12', 'opengl', 'opengles'], '', 'Node: Dawn backend (`vulkan`, `metal`, `d3d12`, `opengl`); empty: the platform\'s default'),
  dawnPoll: textFlag('VQ_DAWN_POLL', /^(auto|spin|(1000|[0-9]{1,3})(\.[0-9]+)?)$/, "'auto', 'spin' or a poll interval in ms (0-1000)", 'Node: how Dawn polls for finished GPU work: `spin` (its own busy loop) or a timer interval in ms; empty or `auto`: 1 ms on CPU devices, `spin` on GPUs'),
  batchDispatches: intFlag('VQ_BATCH_DISPATCHES', 64, 1, 100000, 'dispatches per submit; 1 pins a GPU error to one kernel'),
  logCompile: boolFlag('VQ_LOG_COMPILE', false, 'log each pipeline compilation and its time'),
  dumpWgsl: textFlag('VQ_DUMP_WGSL', /^.+$/, 'a directory', 'Node: write the WGSL of every kernel compiled to this directory (`<name>.<hash>.wgsl`, each file\'s cache key in `kernels.tsv`); empty: off'),
  bindGroupCache: boolFlag('VQ_BIND_GROUP_CACHE', true, '`0`: create a bind group per dispatch instead of reusing cached ones'),
  replayStep: boolFlag('VQ_REPLAY', true, 'trainers record a training step\'s commands once per batch size and replay them (engine/recording.ts; results bitwise equal); `0`: every step runs op by op'),
  matmulSchedule: enumFlag('VQ_MATMUL_SCHEDULE', SCHEDULES, 'auto', 'matmul kernel: `reg` (register tiles, CPU devices) or `smem` (workgroup-memory tiles, GPUs); `auto` picks by device'),
  matmulSubgroups: boolFlag('VQ_MATMUL_SUBGROUPS', true, '`0`: reg matmul loads A per lane instead of sharing it across a subgroup of 8'),
  matmulTile: textFlag('VQ_MATMUL_TILE', /^[1-9][0-9]*x[1-9][0-9]*$/, 'ROWSxCOLS such as 32x8', 'reg matmul tile `ROWSxCOLS` (for benchmarks of other variants); empty: by device'),
  convSchedule: enumFlag('VQ_CONV_SCHEDULE', SCHEDULES, 'auto', 'conv kernels: `reg` or `smem` (as VQ_MATMUL_SCHEDULE); `auto` picks by device and layer'),
  convRepack1x1: boolFlag('VQ_CONV_REPACK_1X1', false, '`1`: 1x1 convs repack their weights like other kernels instead of reading the weight tensor as it is'),
  convUniformWeights: boolFlag('VQ_CONV_UNIFORM_WEIGHTS', true, '`0`: CPU conv kernels read packed weights from storage even when they fit a uniform binding (64 KiB)'),
  convWgradTextures: enumFlag('VQ_CONV_WGRAD_TEXTURES', ['auto', '0', 'A', 'X', 'AX'], 'auto', 'CPU weight gradients read an operand through a texture copy when each of its vec4s is loaded 4+ times; `0`: never; `A`, `X` or `AX`: those operands always'),
  convBroadcast: boolFlag('VQ_CONV_BROADCAST', true, '`0`: reg conv kernels load every weight in each lane instead of sharing loads by subgroupBroadcast (as on devices without subgroups of 8)'),
  convWgradRows: boolFlag('VQ_CONV_WGRAD_ROWS', true, '`0`: CPU weight gradients of 3x3 stride-1 convs use the general kernel instead of the row-walking one'),
  vqSchedule: enumFlag('VQ_VQ_SCHEDULE', SCHEDULES, 'auto', 'nearest-code kernel: `reg` or `smem` (as VQ_MATMUL_SCHEDULE)'),
  vqSubgroups: boolFlag('VQ_VQ_SUBGROUPS', true, '`0`: the reg nearest-code kernel does not share codebook rows across a subgroup of 8'),
  fuse: boolFlag('VQ_FUSE', true, '`0`: one dispatch per parameter and per op instead of the fused kernels (multi-tensor Adam, fused elementwise chains); results are bitwise the same'),
  autotune: enumFlag('VQ_AUTOTUNE', ['auto', 'off', 'on', 'cached'], 'auto', 'kernel variants by timing: `auto`: `on` on a GPU, `off` on a CPU device (its timings carry other processes\' load, and tuning a model takes a minute there); `on` times the candidate plans of each new conv/matmul/nearest-code shape once (at `autotunePending()`, after a first step with the rule-based plans) and keeps the fastest per adapter; `cached`: stored choices only, nothing timed; `off`: the rule-based plans. Flags that force a variant win'),
  autotuneCache: textFlag('VQ_AUTOTUNE_CACHE', /^.+$/, 'a directory', 'Node: directory of the autotuner\'s per-adapter files (`autotune-<adapter hash>.json`); empty: `~/.cache/vqvae-webgpu`'),
} satisfies Record<string, FlagBase<any>>;

export type FlagName = keyof typeof FLAG_SPECS;
export type Flags = { [K in FlagName]: (typeof FLAG_SPECS)[K]['default'] };

const NAMES = Object.keys(FLAG_SPECS) as FlagName[];

function defaults(): Flags {
  return Object.fromEntries(NAMES.map((n) => [n, FLAG_SPECS[n].default])) as Flags;
}

let current: Flags = defaults();

/** The switches in force (read-only; change them with setFlags or withFlags). */
export function flags(): Readonly<Flags> {
  return current;
}

function checked(values: Partial<Flags>): Partial<Flags> {
  for (const [name, value] of Object.entries(values)) {
    const spec = FLAG_SPECS[name as FlagName] as FlagBase<unknown> | undefined;
    if (!spec) throw new Error(`unknown engine flag '${name}' (known: ${NAMES.join(', ')})`);
    if (value === undefined) continue;
    const err = spec.check(value);
    if (err) throw new Error(`flag ${name} (${spec.env}) ${err}`);
  }
  return values;
}

/** Sets some switches (validated first: on an error nothing changes); `undefined` resets one to its default. */
export function setFlags(values: Partial<Flags>): void {
  checked(values);
  const next = { ...current };
  for (const [name, value] of Object.entries(values) as [FlagName, unknown][]) {
    (next as Record<FlagName, unknown>)[name] = value === undefined ? FLAG_SPECS[name].default : value;
  }
  current = next;
}

/** Every switch back to its default. */
export function resetFlags(): void {
  current = defaults();
}

/**
 * Runs `fn` with some switches set and puts the previous values back when it returns, throws,
 * or (for an async `fn`) settles, so a failing test cannot leak a setting into the next.
 */
export function withFlags<T>(values: Partial<Flags>, fn: () => T): T {
  const saved = current;
  setFlags(values);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    current = saved;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      current = saved;
    }) as T;
  }
  current = saved;
  return result;
}

/**
 * Parses switches from text: `source` maps environment variable names (VQ_CONV_SCHEDULE) or
 * flag names (convSchedule) to values; other keys are ignored. Throws naming the variable.
 */
export function parseFlags(source: Record<string, string | undefined>): Partial<Flags> {
  const out: Record<string, unknown> = {};
  for (const name of NAMES) {
    const spec = FLAG_SPECS[name] as FlagBase<unknown>;
    const text = source[spec.env] ?? source[name];
    if (text !== undefined) out[name] = spec.parse(text);
  }
  return out as Partial<Flags>;
}

/** Switches from a page's URL query (`?VQ_CONV_SCHEDULE=smem` or `?convSchedule=smem`). */
export function flagsFromUrl(search: string): Partial<Flags> {
  return parseFlags(Object.fromEntries(new URLSearchParams(search)));
}

/** The table of switches: name, environment variable, type, default and description. */
export function flagTable(): { name: FlagName; env: string; type: string; default: string; doc: string }[] {
  return NAMES.map((name) => {
    const s = FLAG_SPECS[name] as FlagBase<unknown>;
    return { name, env: s.env, type: s.type, default: String(s.default), doc: s.doc };
  });
}
