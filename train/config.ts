// The trainer's configuration: one flat object (what runs/<name>/config.json holds), the seed's
// defaults (../shared/SPEC.md section 2), presets, command-line flags (node:util parseArgs),
// an optional JSON config file that flags override, and validation with clear messages.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type VqVaeConfig, resolveConfig } from '../model/config.js';
import { DEFAULT_NAMES, NAME_SCHEMES, type NameScheme } from '../model/names.js';
import { PREPROCESS_MODES, RESIZE_FILTERS, type PreprocessMode, type ResizeFilter } from './data/images.js';

export type Preset = 'seed' | 'quick';
/** --precision: f32, f16 (devices with shader-f16), or auto (see resolvePrecision). */
export type PrecisionFlag = 'auto' | 'f32' | 'f16';
export type DataSourceFlag = 'auto' | 'synthetic' | 'celeba' | 'folder';
export type SplitFlag = 'train' | 'valid' | 'test';

/** The model fields a run sets (their meaning and checks live in ../model/config.ts). */
type ModelFields = Pick<
  VqVaeConfig,
  'hidden' | 'residualHidden' | 'residualBlocks' | 'codebookSize' | 'embeddingDim' | 'beta' | 'ema' | 'emaDecay' | 'deadCodeThreshold'
>;

export interface TrainConfig extends ModelFields {
  /** Run folder name under runsDir. */
  name: string;
  runsDir: string;
  /** The preset the defaults came from (resolved: never 'auto'). */
  preset: Preset;

  // data
  /** CelebA root or image folder; null: synthetic faces. */
  data: string | null;
  source: DataSourceFlag;
  preprocess: PreprocessMode;
  filter: ResizeFilter;
  cacheDir: string | null;
  /** Seeded random subsets of the splits (null: the whole split). */
  trainSubset: number | null;
  validSubset: number | null;
  testSubset: number | null;
  sampling: 'shuffle' | 'reshuffle' | 'replacement';

  // optimisation
  steps: number;
  batchSize: number;
  lr: number;
  /** 'constant' (the seed's) or 'cosine': lr * (1 + cos(pi * t / steps)) / 2 at step t (0-based). */
  lrSchedule: 'constant' | 'cosine';
  /** Seeds the model's initialisation, the data order and the EMA restarts. */
  seed: number;
  /** Start from these weights (.safetensors, .pt or .pth; either naming scheme) instead of a random init. */
  initFrom: string | null;
  /** Tensor names in saved checkpoints: the seed repository's module tree or the zalando notebook's. */
  names: NameScheme;
  /** Precision of the encoder and decoder (f16 with loss scaling); auto: resolvePrecision. */
  precision: PrecisionFlag;

  // schedule of the side work (in steps)
  logEvery: number;
  valEvery: number;
  /** Images of the validation split used by each validation (0: all). */
  valImages: number;
  checkpointEvery: number;
  gridEvery: number;
  /** Step checkpoints kept besides best (the newest ones). */
  keepCheckpoints: number;
  /** Split of the final evaluation and how many of its images (0: all). */
  evalSplit: SplitFlag;
  evalImages: number;
}

/** The seed's settings (SPEC sections 1-2). */
export const SEED_PRESET: TrainConfig = {
  name: '',
  runsDir: 'runs',
  preset: 'seed',
  data: null,
  source: 'auto',
  preprocess: 'squash',
  filter: 'bilinear',
  cacheDir: null,
  trainSubset: null,
  validSubset: null,
  testSubset: null,
  sampling: 'reshuffle',
  hidden: 128,
  residualHidden: 32,
  residualBlocks: 2,
  codebookSize: 512,
  embeddingDim: 64,
  beta: 1.25,
  ema: false,
  emaDecay: 0.99,
  deadCodeThreshold: 0,
  steps: 10_000,
  batchSize: 256,
  lr: 1e-3,
  lrSchedule: 'constant',
  seed: 0,
  initFrom: null,
  names: DEFAULT_NAMES,
  precision: 'auto',
  logEvery: 50,
  valEvery: 500,
  valImages: 2048,
  checkpointEvery: 500,
  gridEvery: 1000,
  keepCheckpoints: 2,
  evalSplit: 'test',
  evalImages: 0,
};

/**
 * A CPU-device preset that finishes in a few minutes on two cores: a narrower trunk (hidden 64;
 * the seed's codebook size, code width, beta and residual blocks), batches of 8, 1000 steps,
 * smaller validation and test passes, and the EMA codebook with dead-code restarts, because in
 * a run this short the codebook loss leaves most codes unused while the EMA codebook soon uses
 * all of them. lr 2e-3 with a cosine decay was the best of the rates tried at this length.
 */
export const QUICK_PRESET: Partial<TrainConfig> = {
  preset: 'quick',
  sampling: 'shuffle',
  hidden: 64,
  residualHidden: 32,
  batchSize: 8,
  steps: 1000,
  lr: 2e-3,
  lrSchedule: 'cosine',
  ema: true,
  deadCodeThreshold: 1,
  logEvery: 20,
  valEvery: 250,
  valImages: 128,
  checkpointEvery: 250,
  gridEvery: 250,
  evalImages: 256,
};

export const PRESETS: Record<Preset, Partial<TrainConfig>> = { seed: {}, quick: QUICK_PRESET };

/** Options as given (flags, config file): any subset, and the preset may be 'auto'. */
export type GivenConfig = Omit<Partial<TrainConfig>, 'preset'> & { preset?: Preset | 'auto' };

/** The model's sizes: what --init-from's file decides unless a flag gives them. */
export const ARCH_KEYS = ['hidden', 'residualHidden', 'residualBlocks', 'codebookSize', 'embeddingDim'] as const;

/**
 * Options that may change when resuming (everything else must match the run): the schedule,
 * where the data are (a moved folder), and the learning rate (e.g. lower after a divergence;
 * a changed rate of course ends the equality with an uninterrupted run).
 */
export const RESUMABLE_KEYS: (keyof TrainConfig)[] = [
  'steps',
  'lr',
  'data',
  'cacheDir',
  'logEvery',
  'valEvery',
  'valImages',
  'checkpointEvery',
  'gridEvery',
  'keepCheckpoints',
  'evalSplit',
  'evalImages',
  'names',
];

type Kind = 'int' | 'posint' | 'number' | 'posnumber' | 'string' | 'bool' | 'nullable-string' | 'nullable-posint' | { oneOf: readonly string[] };

/** Every config key: flag name, kind and help. Flags are the kebab-case of the key. */
export const FIELDS: { key: keyof TrainConfig; kind: Kind; help: string; short?: string }[] = [
  { key: 'name', kind: 'string', help: 'run name: the run folder is <runs-dir>/<name> (default: <preset>-<date>-<time>)' },
  { key: 'runsDir', kind: 'string', help: 'folder of run folders (default runs)' },
  { key: 'preset', kind: { oneOf: ['auto', 'seed', 'quick'] }, help: "defaults: 'seed' (the seed's settings) or 'quick' (CPU-sized); default auto: quick on a CPU device, seed on a GPU" },
  { key: 'data', kind: 'nullable-string', help: 'CelebA root or image folder (default: $VQ_DATA, else the built-in synthetic faces)' },
  { key: 'source', kind: { oneOf: ['auto', 'synthetic', 'celeba', 'folder'] }, help: 'what --data is (default auto: CelebA if its layout matches, else a folder)' },
  { key: 'preprocess', kind: { oneOf: PREPROCESS_MODES }, help: 'squash (the seed\'s), crop148, crop178 or center' },
  { key: 'filter', kind: { oneOf: RESIZE_FILTERS }, help: 'resize filter: bilinear (PIL antialiased) or area' },
  { key: 'cacheDir', kind: 'nullable-string', help: 'folder of the prepared image cache (default beside the data)' },
  { key: 'trainSubset', kind: 'nullable-posint', help: 'train on a seeded random subset of this many images (the seed tuned on 55000)' },
  { key: 'validSubset', kind: 'nullable-posint', help: 'validation subset size (the seed used 5500)' },
  { key: 'testSubset', kind: 'nullable-posint', help: 'test subset size' },
  {
    key: 'sampling',
    kind: { oneOf: ['reshuffle', 'shuffle', 'replacement'] },
    help: "batches: reshuffle (the seed's next(iter(loader)): every step the first B images of a fresh permutation; seed preset), shuffle (shuffled epochs; quick preset) or replacement (independent draws)",
  },
  { key: 'hidden', kind: 'posint', help: 'hidden width H of encoder and decoder (seed 128)' },
  { key: 'residualHidden', kind: 'posint', help: 'residual width R (seed 32)' },
  { key: 'residualBlocks', kind: 'int', help: 'residual blocks per stack (seed 2)' },
  { key: 'codebookSize', kind: 'posint', help: 'codebook size K (seed 512)', short: 'K' },
  { key: 'embeddingDim', kind: 'posint', help: 'code width D (seed 64)', short: 'D' },
  { key: 'beta', kind: 'number', help: 'commitment cost (seed 1.25)' },
  { key: 'ema', kind: 'bool', help: 'EMA codebook updates instead of the codebook loss (SPEC section 3)' },
  { key: 'emaDecay', kind: 'posnumber', help: 'EMA decay (default 0.99)' },
  { key: 'deadCodeThreshold', kind: 'number', help: 'with --ema: restart codes whose EMA count falls below this (default 0: never)' },
  { key: 'steps', kind: 'posint', help: 'training steps (seed 10000)' },
  { key: 'batchSize', kind: 'posint', help: 'images per step (seed 256)', short: 'b' },
  { key: 'lr', kind: 'posnumber', help: 'Adam learning rate (seed 1e-3)' },
  { key: 'lrSchedule', kind: { oneOf: ['constant', 'cosine'] }, help: "learning-rate schedule: constant (the seed's) or cosine decay to 0 over --steps" },
  { key: 'seed', kind: 'int', help: 'random seed: initialisation, data order, EMA restarts (default 0)' },
  { key: 'initFrom', kind: 'nullable-string', help: 'start from the weights in FILE (.safetensors, .pt or .pth, seed or zalando names; step 0, fresh Adam); the model\'s sizes come from the file unless given' },
  { key: 'names', kind: { oneOf: NAME_SCHEMES }, help: "tensor names of saved checkpoints: seed (the seed repository's encoder.conv1.weight, ...; default) or zalando (_encoder._conv_1.weight, ...)" },
  {
    key: 'precision',
    kind: { oneOf: ['auto', 'f32', 'f16'] },
    help: 'f32, or f16 activations and weights in the encoder and decoder with f32 master weights and dynamic loss scaling (needs a device with shader-f16); default auto: f32 until f16 is measured faster',
  },
  { key: 'logEvery', kind: 'posint', help: 'log metrics every N steps (losses come back every step through the metrics ring, two steps late; nothing waits for them)' },
  { key: 'valEvery', kind: 'posint', help: 'validate every N steps' },
  { key: 'valImages', kind: 'int', help: 'validation images per validation (0: the whole split)' },
  { key: 'checkpointEvery', kind: 'posint', help: 'save a checkpoint every N steps' },
  { key: 'gridEvery', kind: 'posint', help: 'write a reconstruction grid every N steps' },
  { key: 'keepCheckpoints', kind: 'posint', help: 'step checkpoints to keep (default 2; best is kept apart)' },
  { key: 'evalSplit', kind: { oneOf: ['train', 'valid', 'test'] }, help: 'split of the final evaluation (default test)' },
  { key: 'evalImages', kind: 'int', help: 'images of the final evaluation (0: the whole split)' },
];

/** 1e-3 -> '1e-3', 0.0005 -> '5e-4', 0.002 -> '2e-3', 0.1 -> '0.1'. */
export function formatLr(lr: number): string {
  if (lr >= 0.1) return String(lr);
  const e = Math.floor(Math.log10(lr) + 1e-9);
  const m = Math.round((lr / 10 ** e) * 1000) / 1000;
  return `${m}e${e}`;
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const FIELD_BY_KEY = new Map(FIELDS.map((f) => [f.key as string, f]));

/** Converts and checks one value; `where` names its origin for messages. */
export function coerce(key: keyof TrainConfig, raw: unknown, where: string): unknown {
  const f = FIELD_BY_KEY.get(key);
  if (!f) throw new Error(`${where}: unknown option '${key}'`);
  const bad = (want: string): never => {
    const what = where === `--${kebab(key)}` ? where : `${where}: ${kebab(key)}`;
    throw new Error(`${what} must be ${want}, got ${JSON.stringify(raw)}`);
  };
  const num = (v: unknown): number => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : typeof v === 'number' ? v : NaN;
    return Number.isFinite(n) ? n : bad('a number');
  };
  const kind = f.kind;
  if (typeof kind === 'object') {
    if (typeof raw !== 'string' || !kind.oneOf.includes(raw)) bad(`one of ${kind.oneOf.join(', ')}`);
    return raw;
  }
  switch (kind) {
    case 'string':
      if (typeof raw !== 'string' || raw === '') bad('a non-empty string');
      return raw;
    case 'nullable-string':
      if (raw === null || raw === '') return null;
      if (typeof raw !== 'string') bad('a string');
      return raw;
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return bad('true or false');
    case 'number':
      return num(raw);
    case 'posnumber': {
      const n = num(raw);
      return n > 0 ? n : bad('a number > 0');
    }
    case 'int': {
      const n = num(raw);
      return Number.isInteger(n) && n >= 0 ? n : bad('an integer >= 0');
    }
    case 'posint': {
      const n = num(raw);
      return Number.isInteger(n) && n >= 1 ? n : bad('a positive integer');
    }
    case 'nullable-posint': {
      if (raw === null || raw === '' || raw === 0 || raw === '0') return null;
      const n = num(raw);
      return Number.isInteger(n) && n >= 1 ? n : bad('a positive integer');
    }
  }
}

/** Reads a JSON config file: an object of options (camelCase or kebab-case keys). */
export function readConfigFile(path: string): GivenConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`--config ${path}: expected a JSON object of options`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const key = camel(k) as keyof TrainConfig;
    if (META_KEYS.has(key)) continue; // a run's config.json also records what it ran on
    out[key] = coerce(key, v, `--config ${path}`);
  }
  return out as GivenConfig;
}

/**
 * A run folder's config.json as a full config: options added since the run was made take
 * their seed defaults (initFrom none, names seed), so older runs resume and evaluate.
 */
export function readRunConfig(path: string): TrainConfig {
  return { ...SEED_PRESET, ...(readConfigFile(path) as Partial<TrainConfig>) } as TrainConfig;
}

/** Keys a run folder's config.json holds besides the options (ignored when read back). */
const META_KEYS = new Set(['version', 'created', 'adapter', 'isCpu', 'dataset', 'parameters', 'command']);

export interface ResolvedTrainConfig {
  config: TrainConfig;
  /** The preset came from the device (no --preset): quick on a CPU device, seed on a GPU. */
  presetFromDevice: boolean;
  /** The preset was chosen from the device and is quick. */
  autoQuick: boolean;
  /** Options whose values came from flags or the config file, in FIELDS order. */
  given: (keyof TrainConfig)[];
  /** Model sizes taken from the --init-from file. */
  fromInit: (keyof TrainConfig)[];
}

/**
 * The full config. The preset is chosen once: --preset if given, else from the device (quick
 * on a CPU device, seed on a GPU); then every option given (config file, then flags) replaces
 * only its own value, so `--steps 40` on a CPU device is the quick preset with 40 steps.
 * `initArch`, the model sizes of an --init-from file, come between the preset and the options.
 */
export function resolveTrainConfig(
  given: GivenConfig,
  env: { isCpu: boolean; shaderF16?: boolean; now?: Date; initArch?: Partial<TrainConfig> },
): ResolvedTrainConfig {
  const presetFromDevice = given.preset === undefined || given.preset === 'auto';
  const preset: Preset = presetFromDevice ? (env.isCpu ? 'quick' : 'seed') : (given.preset as Preset);
  const defined = Object.fromEntries(Object.entries(given).filter(([k, v]) => v !== undefined && k !== 'preset')) as Partial<TrainConfig>;
  const initArch = Object.fromEntries(Object.entries(env.initArch ?? {}).filter(([k]) => !(k in defined))) as Partial<TrainConfig>;
  const config: TrainConfig = { ...SEED_PRESET, ...PRESETS[preset], ...initArch, ...defined, preset };
  if (!config.name) config.name = `${preset}-${timestamp(env.now ?? new Date())}`;
  validateTrainConfig(config);
  if (env.shaderF16 !== undefined) resolvePrecision(config.precision, { shaderF16: env.shaderF16 });
  return {
    config,
    presetFromDevice,
    autoQuick: presetFromDevice && preset === 'quick',
    given: FIELDS.map((f) => f.key).filter((k) => k in defined),
    fromInit: FIELDS.map((f) => f.key).filter((k) => k in initArch),
  };
}

/** An option's value as the banner shows it. */
function show(k: keyof TrainConfig, v: unknown): string {
  return k === 'lr' && typeof v === 'number' ? formatLr(v) : String(v);
}

/**
 * What a new run starts with, in two lines: the preset and why, and which values came from
 * flags (or --init-from's file) rather than the preset.
 */
export function presetBanner(r: ResolvedTrainConfig, device: { isCpu: boolean; description: string }): string {
  const c = r.config;
  const why = r.presetFromDevice
    ? `chosen for the ${device.isCpu ? 'CPU' : 'GPU'} device ${device.description}; --preset ${c.preset === 'quick' ? 'seed' : 'quick'} for the ${c.preset === 'quick' ? "seed's settings" : 'CPU-sized one'}`
    : 'from --preset';
  const presetValues = (['hidden', 'batchSize', 'steps', 'lr', 'lrSchedule', 'ema', 'sampling'] as (keyof TrainConfig)[])
    .filter((k) => !r.given.includes(k) && !r.fromInit.includes(k))
    .map((k) => `${kebab(k)} ${show(k, c[k])}`);
  const lines = [`preset ${c.preset} (${why})${presetValues.length ? `: ${presetValues.join(', ')}` : ''}`];
  const given = r.given.filter((k) => k !== 'name' || !c.name.startsWith(`${c.preset}-`));
  lines.push(given.length ? `from flags: ${given.map((k) => `--${kebab(k)} ${show(k, c[k])}`).join(', ')}` : 'from flags: none (every value from the preset)');
  if (r.fromInit.length) lines.push(`from --init-from ${c.initFrom}: ${r.fromInit.map((k) => `${kebab(k)} ${show(k, c[k])}`).join(', ')}`);
  return lines.join('\n');
}

function timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * What auto precision is: f32 until f16 is shown faster without hurting the loss curve (the
 * conv and quantiser kernels do not read f16 yet, so f16 only adds casts; bench: train_step).
 */
export const AUTO_PRECISION: 'f32' | 'f16' = 'f32';

/** The precision a run trains in on a device; f16 without shader-f16 is an error naming the flag. */
export function resolvePrecision(precision: PrecisionFlag, device: { shaderF16: boolean; description?: string }): 'f32' | 'f16' {
  if (precision === 'auto') return AUTO_PRECISION === 'f16' && !device.shaderF16 ? 'f32' : AUTO_PRECISION;
  if (precision === 'f16' && !device.shaderF16) {
    throw new Error(`--precision f16 needs a device with shader-f16, which ${device.description ?? 'this device'} does not have (use --precision f32 or auto)`);
  }
  return precision;
}

/** Checks every field (types and ranges) and the model config; throws naming the field. */
export function validateTrainConfig(c: TrainConfig): void {
  for (const f of FIELDS) {
    if (f.key === 'name' && c.name === '') continue;
    coerce(f.key, c[f.key], 'config');
  }
  if (/[/\\]|^\.\.?$/.test(c.name)) throw new Error(`config: name must be a plain folder name, got ${JSON.stringify(c.name)}`);
  modelConfig(c); // throws on an invalid model
}

/** The model's config from a train config. */
export function modelConfig(c: TrainConfig): VqVaeConfig {
  return resolveConfig({
    hidden: c.hidden,
    residualHidden: c.residualHidden,
    residualBlocks: c.residualBlocks,
    codebookSize: c.codebookSize,
    embeddingDim: c.embeddingDim,
    beta: c.beta,
    ema: c.ema,
    emaDecay: c.emaDecay,
    deadCodeThreshold: c.deadCodeThreshold,
  });
}

// ---- command line

export interface TrainCli {
  /** Options given by flags or the config file (undefined: not given). */
  given: GivenConfig;
  resume: string | null;
  progress: 'auto' | 'bar' | 'lines' | 'none';
  overwrite: boolean;
  help: boolean;
  /** Values of the caller's extra flags. */
  extra: Record<string, string | boolean | undefined>;
  /** Comma-separated lists given for `listKeys` (e.g. the sweep's --beta 0.25,1.25). */
  lists: Partial<Record<keyof TrainConfig, number[]>>;
}

type ParseOptions = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function flagOptions(extra: ParseOptions): ParseOptions {
  const o: ParseOptions = {};
  for (const f of FIELDS) {
    o[kebab(f.key)] = { type: f.kind === 'bool' ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  }
  o['no-ema'] = { type: 'boolean' };
  o.config = { type: 'string', short: 'c' };
  o.resume = { type: 'string', short: 'r' };
  o.progress = { type: 'string' };
  o.overwrite = { type: 'boolean' };
  o.help = { type: 'boolean', short: 'h' };
  return { ...o, ...extra };
}

/**
 * Parses `npm run train` arguments; flags override the config file. `extra` adds flags (their
 * values come back in `extra`); `listKeys` are numeric options that take comma-separated lists.
 */
export function parseTrainArgs(argv: string[], opts: { extra?: ParseOptions; listKeys?: (keyof TrainConfig)[] } = {}): TrainCli {
  const extraOpts = opts.extra ?? {};
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: flagOptions(extraOpts), allowPositionals: false, strict: true });
  } catch (e) {
    throw new Error(`${(e as Error).message.replace(/\. To specify.*$/s, '')} (see --help)`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const fromFile = typeof v.config === 'string' ? readConfigFile(v.config) : {};
  const given: Record<string, unknown> = { ...fromFile };
  const lists: Partial<Record<keyof TrainConfig, number[]>> = {};
  for (const f of FIELDS) {
    const raw = v[kebab(f.key)];
    if (raw === undefined) continue;
    if (opts.listKeys?.includes(f.key) && typeof raw === 'string') {
      const items = raw.split(',').map((x) => x.trim()).filter((x) => x !== '');
      if (items.length === 0) throw new Error(`--${kebab(f.key)}: empty list`);
      lists[f.key] = items.map((x) => coerce(f.key, x, `--${kebab(f.key)}`) as number);
      continue;
    }
    given[f.key] = coerce(f.key, raw, `--${kebab(f.key)}`);
  }
  if (v['no-ema']) given.ema = false;
  const progress = (v.progress as string | undefined) ?? 'auto';
  if (!['auto', 'bar', 'lines', 'none'].includes(progress)) throw new Error(`--progress must be auto, bar, lines or none, got '${progress}'`);
  const extra: Record<string, string | boolean | undefined> = {};
  for (const k of Object.keys(extraOpts)) extra[k] = v[k];
  return {
    given: given as GivenConfig,
    resume: typeof v.resume === 'string' ? v.resume : null,
    progress: progress as TrainCli['progress'],
    overwrite: v.overwrite === true,
    help: v.help === true,
    extra,
    lists,
  };
}

function fmtDefault(v: unknown): string {
  return v === null ? '' : ` [seed: ${v}]`;
}

export function trainHelp(): string {
  const lines = [
    'Usage: npm run train -- [options]',
    '',
    'Trains the VQ-VAE and writes a run folder <runs-dir>/<name>/ (config, metrics, curves,',
    'reconstruction grids, checkpoints, final evaluation). Without --data it trains on the',
    "built-in synthetic faces. The preset is --preset, else the device's: 'quick' on a CPU device",
    "(about five minutes on two cores), 'seed' (the seed's settings) on a GPU. Every other option",
    'replaces only its own value: --steps 40 on a CPU device is the quick preset with 40 steps.',
    '',
    'Options (flags override --config):',
    '  -c, --config FILE           JSON file of options (keys as below, camelCase or kebab-case)',
    '  -r, --resume DIR            continue the run in DIR exactly (--steps may be raised)',
    '      --overwrite             replace an existing run folder of the same name',
    '      --progress MODE         auto (bar on a terminal, lines otherwise), bar, lines, none',
    '  -h, --help                  this text',
  ];
  for (const f of FIELDS) {
    const flag = `${f.short ? `-${f.short}, ` : '    '}--${kebab(f.key)}${f.kind === 'bool' ? '' : ' X'}`;
    const seedValue = SEED_PRESET[f.key];
    const showDefault = f.kind !== 'bool' && f.key !== 'name' && f.key !== 'preset' && seedValue !== null && !f.help.includes('(seed') && !f.help.includes('(default');
    lines.push(`  ${flag.padEnd(27)} ${f.help}${showDefault ? fmtDefault(seedValue) : ''}`);
  }
  lines.push('      --no-ema                the codebook loss (default)');
  lines.push('');
  lines.push(`Quick preset: ${Object.entries(QUICK_PRESET).filter(([k]) => k !== 'preset').map(([k, v]) => `${kebab(k)} ${v}`).join(', ')}.`);
  lines.push('Environment: VQ_DATA (default --data), VQ_ADAPTER, VQ_BACKEND (device choice).');
  lines.push('Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and exits with 130.');
  return lines.join('\n');
}
