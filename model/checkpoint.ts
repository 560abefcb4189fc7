// Checkpoints as two safetensors blobs (files on Node, see checkpoint_files.ts; picked files
// and downloads in a page):
//   model  the model's state_dict under PyTorch names and layouts (loads into the matching
//          PyTorch model with load_state_dict(strict=True)), names from the seed repository's
//          module tree by default or the zalando notebook's (names.ts), with the resolved
//          config, step and name scheme in its metadata;
//   train  Adam's moments per parameter (under the model blob's names) plus the trainer's
//          state (step, RNG states, data order, ...) as JSON metadata.
// Both carry the same random id, so a model blob never pairs with another run's train state.
// A model blob may also be a PyTorch-written state_dict: safetensors or torch.save's .pt
// (torch_pt.ts), either naming scheme, with no metadata (the config is read off the shapes).
// Loading validates every blob, name, dtype, shape and value before touching the model.
// Platform-free (no Node modules): bytes in, bytes out.
import type { Adam, AdamState } from '../engine/optim.js';
import { rt } from '../engine/runtime.js';
import { type ParsedSafetensors, type SafeTensor, SafetensorsError, type WriteEntry, decodeSafetensors, encodeSafetensors, toFloat32 } from './safetensors.js';
import { type VqVaeConfig, resolveConfig } from './config.js';
import { DEFAULT_NAMES, NAME_SCHEMES, type NameScheme, detectScheme, toScheme } from './names.js';
import { paramSpecs } from './params.js';
import { PtError, decodePt, looksLikePt } from './torch_pt.js';
import { CODEBOOK, EMA_COUNT, EMA_SUM, VqVae } from './vqvae.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointInfo {
  step: number;
  config: VqVaeConfig;
  /** Trainer state saved with the checkpoint (JSON), or null for a model-only file. */
  train: Record<string, unknown> | null;
  /** The naming scheme of the model blob's tensors. */
  names: NameScheme;
  /** 'pt' for a torch.save file, else 'safetensors'. */
  format: 'safetensors' | 'pt';
  /** The key of a whole PyTorch training checkpoint the state_dict came from, else null. */
  key: string | null;
}

/** A checkpoint's bytes: the model blob, and the train blob when optimiser or trainer state was given. */
export interface CheckpointBytes {
  model: Uint8Array;
  train?: Uint8Array;
}

export interface EncodeCheckpointOptions {
  step: number;
  optimizer?: Adam | null;
  train?: Record<string, unknown>;
  /** The id tying the two blobs together (default: 16 random hex digits). */
  id?: string;
  /** Tensor names: the seed repository's module tree (default) or the zalando notebook's. */
  names?: NameScheme;
}

export interface LoadCheckpointBytesOptions {
  /** The train blob (absent: no train state, as when `<base>.train.safetensors` does not exist). */
  trainBytes?: Uint8Array | ArrayBuffer | null;
  optimizer?: Adam | null;
  /** Names the model blob in errors (a path, or a picked file's name). */
  source?: string;
  /** Names the train blob in errors. */
  trainSource?: string;
  /** Told about conversions (float16 -> float32, ...) and where a .pt's state_dict came from (default console.warn). */
  onWarning?: (message: string) => void;
}

type Bytes = Uint8Array | ArrayBuffer;

const ARCH_KEYS: (keyof VqVaeConfig)[] = ['inChannels', 'hidden', 'residualHidden', 'residualBlocks', 'codebookSize', 'embeddingDim', 'ema'];

const DEFAULT_SOURCE = 'checkpoint';
const warn = (m: string) => console.warn(m);
const defaultTrainSource = (source: string) => `${source} (train state)`;

/** 8 random bytes as hex, from the Web Crypto API (Node 20 and browsers). */
function randomId(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** The bytes `saveCheckpoint` writes: the model blob, plus the train blob when an optimiser or trainer state is given. */
export async function encodeCheckpoint(model: VqVae, opts: EncodeCheckpointOptions): Promise<CheckpointBytes> {
  const id = opts.id ?? randomId();
  const scheme = opts.names ?? DEFAULT_NAMES;
  if (!NAME_SCHEMES.includes(scheme)) throw new CheckpointError(`names must be one of ${NAME_SCHEMES.join(', ')}, got ${JSON.stringify(scheme)}`);
  const entries: Record<string, WriteEntry> = {};
  for (const [name, t] of model.state) {
    entries[toScheme(name, scheme)] = { dtype: 'F32', shape: [...t.shape], data: (await t.read()) as Float32Array };
  }
  const modelMeta: Record<string, string> = {
    format: 'pt',
    'vqvae.id': id,
    'vqvae.step': String(opts.step),
    'vqvae.config': JSON.stringify(model.config),
    'vqvae.names': scheme,
  };
  if (model.ema) modelMeta['vqvae.ema'] = JSON.stringify({ step: model.ema.step, rng: model.ema.rng.getState() });
  const out: CheckpointBytes = { model: encodeSafetensors(entries, modelMeta) };
  if (opts.optimizer || opts.train) {
    const trainEntries: Record<string, WriteEntry> = {};
    let optimizer: (Omit<AdamState, 'params'> & { steps: Record<string, number> }) | null = null;
    if (opts.optimizer) {
      const st = await opts.optimizer.state();
      const names = paramNames(model, opts.optimizer);
      const steps: Record<string, number> = {};
      st.params.forEach((p, i) => {
        if (!p) return;
        const shape = [...opts.optimizer!.params[i].shape];
        const n = toScheme(names[i], scheme);
        trainEntries[`${n}.exp_avg`] = { dtype: 'F32', shape, data: p.m };
        trainEntries[`${n}.exp_avg_sq`] = { dtype: 'F32', shape, data: p.v };
        steps[n] = p.step;
      });
      const { params: _, ...rest } = st;
      optimizer = { ...rest, steps };
    }
    const trainMeta: Record<string, string> = {
      'vqvae.id': id,
      'vqvae.step': String(opts.step),
      'vqvae.train': JSON.stringify(opts.train ?? {}),
    };
    if (optimizer) trainMeta['vqvae.optimizer'] = JSON.stringify(optimizer);
    out.train = encodeSafetensors(trainEntries, trainMeta);
  }
  return out;
}

function paramNames(model: VqVae, optimizer: Adam): string[] {
  const byTensor = new Map([...model.state].map(([n, t]) => [t, n]));
  return optimizer.params.map((p, i) => {
    const n = byTensor.get(p);
    if (!n) throw new CheckpointError(`optimizer parameter ${i} (${p.describe()}) is not one of the model's tensors`);
    return n;
  });
}

function parseJson(source: string, key: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new CheckpointError(`${source}: metadata '${key}' is not valid JSON`);
  }
}

/** Decodes and validates a blob; malformed data becomes a CheckpointError naming `source`. */
function decode(bytes: Bytes, source: string): ParsedSafetensors {
  try {
    return decodeSafetensors(bytes, source);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    throw e;
  }
}

/** A model blob with its tensors under the engine's names (whatever scheme the blob used). */
interface ModelBlob extends ParsedSafetensors {
  names: NameScheme;
  format: 'safetensors' | 'pt';
  key: string | null;
  /** The blob's own name of an engine name (for messages). */
  show: (name: string) => string;
  /** Names that fit neither the blob's scheme nor the model (always unexpected). */
  foreign: string[];
}

/**
 * Decodes a model blob: safetensors, or a torch.save .pt state_dict (a zip; a whole training
 * checkpoint gives its model's state_dict). Its names must all follow one scheme.
 */
function decodeModel(bytes: Bytes, source: string, onWarning: (m: string) => void): ModelBlob {
  return withScheme(decodeRaw(bytes, source, onWarning), source);
}

interface RawBlob {
  raw: ParsedSafetensors;
  format: ModelBlob['format'];
  key: string | null;
}

/** A state_dict's tensors under the file's own names (safetensors, or a .pt's state_dict). */
function decodeRaw(bytes: Bytes, source: string, onWarning: (m: string) => void): RawBlob {
  let raw: ParsedSafetensors;
  let format: ModelBlob['format'] = 'safetensors';
  let key: string | null = null;
  if (looksLikePt(bytes)) {
    format = 'pt';
    try {
      const pt = decodePt(bytes, source);
      raw = { tensors: pt.tensors, metadata: {} };
      key = pt.key;
      for (const w of pt.warnings) onWarning(w);
      if (key !== null) onWarning(`${source}: a whole training checkpoint; reading the model state_dict under its key '${key}'`);
    } catch (e) {
      if (e instanceof PtError) throw new CheckpointError(e.message);
      throw e;
    }
  } else {
    raw = decode(bytes, source);
  }
  return { raw, format, key };
}

/** The tensors renamed to the engine's names from the scheme they follow. */
function withScheme({ raw, format, key }: RawBlob, source: string): ModelBlob {
  let match;
  try {
    match = detectScheme([...raw.tensors.keys()]);
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
  const tensors = new Map<string, SafeTensor>();
  const fileName = new Map<string, string>();
  for (const [n, internal] of match.map) {
    tensors.set(internal, raw.tensors.get(n)!);
    fileName.set(internal, n);
  }
  const show = (n: string) => fileName.get(n) ?? match.prefix + toScheme(n, match.scheme);
  return { tensors, metadata: raw.metadata, names: match.scheme, format, key, show, foreign: match.foreign };
}

/**
 * The architecture a state_dict holds, read off its tensors' shapes (for files with no
 * 'vqvae.config', as PyTorch writes them): K x D from the codebook, H from the second encoder
 * conv, the image channels from the first, R and the block count from the residual stack,
 * EMA from the presence of its buffers. Other settings keep their defaults.
 */
export function configFromShapes(shapes: ReadonlyMap<string, readonly number[]>, source = DEFAULT_SOURCE): VqVaeConfig {
  const need = (name: string, rank: number): readonly number[] => {
    const s = shapes.get(name);
    if (!s) throw new CheckpointError(`${source}: cannot tell the architecture: no '${toScheme(name, 'seed')}' ('${name}') tensor`);
    if (s.length !== rank) throw new CheckpointError(`${source}: '${name}' has shape [${s.join(', ')}], expected ${rank} dimensions`);
    return s;
  };
  const [codebookSize, embeddingDim] = need(CODEBOOK, 2);
  const conv1 = need('_encoder._conv_1.weight', 4);
  const conv2 = need('_encoder._conv_2.weight', 4);
  let residualBlocks = 0;
  while (shapes.has(`_encoder._residual_stack._layers.${residualBlocks}._block.1.weight`)) residualBlocks++;
  const residualHidden = residualBlocks > 0 ? need('_encoder._residual_stack._layers.0._block.1.weight', 4)[0] : undefined;
  try {
    return resolveConfig({ inChannels: conv1[1], hidden: conv2[0], residualBlocks, codebookSize, embeddingDim, ema: shapes.has(EMA_COUNT), ...(residualHidden ? { residualHidden } : {}) });
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
}

/** The blob's resolved 'vqvae.config', or undefined when it has none (a PyTorch-written file). */
function storedConfig(file: ParsedSafetensors, source: string): VqVaeConfig | undefined {
  const raw = parseJson(source, 'vqvae.config', file.metadata['vqvae.config']);
  if (raw === undefined) return undefined;
  try {
    return resolveConfig(raw as Partial<VqVaeConfig>);
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
}

/** The stored config, else (a PyTorch-written file) the architecture its shapes give. */
function requireConfig(file: ModelBlob, source: string): VqVaeConfig {
  return storedConfig(file, source) ?? configFromShapes(new Map([...file.tensors].map(([n, t]) => [n, t.shape])), source);
}

/** Reads and validates the config stored in a checkpoint's model blob, or read off a PyTorch file's shapes (no GPU work). */
export function checkpointConfigFromBytes(bytes: Bytes, source = DEFAULT_SOURCE): VqVaeConfig {
  return requireConfig(decodeModel(bytes, source, () => {}), source);
}

/**
 * The state_dict names and shapes a VqVae built from `config` has (`model.state`), known
 * without allocating it: the parameters, then the EMA state when config.ema.
 */
export function stateLayout(config: VqVaeConfig): Map<string, readonly number[]> {
  const layout = new Map<string, readonly number[]>(paramSpecs(config).map((s) => [s.name, s.shape]));
  if (config.ema) {
    const [k, d] = layout.get(CODEBOOK)!;
    layout.set(EMA_COUNT, [k]);
    layout.set(EMA_SUM, [k, d]);
  }
  return layout;
}

/** The blob holds exactly the expected tensor names (errors list the missing and the unexpected, as the file names them). */
function checkNames(file: ModelBlob, expected: ReadonlyMap<string, readonly number[]>, source: string): void {
  const missing = [...expected.keys()].filter((n) => !file.tensors.has(n)).map(file.show);
  const unexpected = [...[...file.tensors.keys()].filter((n) => !expected.has(n)).map(file.show), ...file.foreign];
  if (missing.length || unexpected.length) {
    throw new CheckpointError(
      `${source}: state_dict names (${file.names} scheme) do not match the model` +
        (missing.length ? `; missing: ${missing.join(', ')}` : '') +
        (unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''),
    );
  }
}

function checkShape(file: ModelBlob, source: string, name: string, got: readonly number[], want: readonly number[]): void {
  if (got.join() !== want.join()) {
    throw new CheckpointError(`${source}: '${file.show(name)}' has shape [${got.join(', ')}], the model needs [${want.join(', ')}]`);
  }
}

/** A model blob validated against a model: everything a load writes into the model. */
interface ValidModel {
  values: Map<string, Float32Array>;
  emaMeta: { step?: unknown; rng?: unknown } | undefined;
  step: number;
  config: VqVaeConfig;
  names: NameScheme;
  format: ModelBlob['format'];
  key: string | null;
}

/** Validates a decoded model blob against `model`; touches nothing. */
function validateModel(file: ModelBlob, model: VqVae, source: string): ValidModel {
  const { tensors, metadata } = file;

  // config: must match the model's architecture when the blob states one
  let config = model.config;
  const stored = storedConfig(file, source);
  if (stored) {
    config = stored;
    const diff = ARCH_KEYS.filter((k) => config[k] !== model.config[k]);
    if (diff.length) {
      throw new CheckpointError(`${source}: saved model differs from this one in ${diff.map((k) => `${k} (file ${config[k]}, model ${model.config[k]})`).join(', ')}`);
    }
  }

  // names, shapes, values
  checkNames(file, new Map([...model.state].map(([n, t]) => [n, t.shape])), source);
  const values = new Map<string, Float32Array>();
  for (const [name, t] of model.state) {
    const st = tensors.get(name)!;
    checkShape(file, source, name, st.shape, t.shape);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(st.dtype)) throw new CheckpointError(`${source}: '${file.show(name)}' is ${st.dtype}, expected a float type`);
    const v = toFloat32(st);
    const bad = v.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointError(`${source}: '${file.show(name)}' holds a non-finite value (${v[bad]}) at element ${bad}`);
    values.set(name, v);
  }
  const step = metadata['vqvae.step'] === undefined ? 0 : Number(metadata['vqvae.step']);
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`${source}: metadata 'vqvae.step' is not a non-negative integer`);
  const emaMeta = parseJson(source, 'vqvae.ema', metadata['vqvae.ema']) as ValidModel['emaMeta'];
  return { values, emaMeta, step, config, names: file.names, format: file.format, key: file.key };
}

/** A train blob validated against its model blob and the optimiser. */
interface ValidTrain {
  train: Record<string, unknown>;
  adamState: AdamState | null;
}

/** Validates a decoded train blob (optimiser moments + trainer JSON, under the model blob's names); touches nothing. */
function validateTrain(
  tf: ParsedSafetensors,
  file: ModelBlob,
  model: VqVae,
  optimizer: Adam | null | undefined,
  source: string,
  trainSource: string,
): ValidTrain {
  if (tf.metadata['vqvae.id'] !== file.metadata['vqvae.id']) {
    throw new CheckpointError(`${trainSource} belongs to another checkpoint than ${source} (ids ${tf.metadata['vqvae.id']} and ${file.metadata['vqvae.id']}); the save was interrupted or files were mixed`);
  }
  const t = parseJson(trainSource, 'vqvae.train', tf.metadata['vqvae.train']);
  if (t !== undefined && (typeof t !== 'object' || t === null || Array.isArray(t))) throw new CheckpointError(`${trainSource}: 'vqvae.train' is not a JSON object`);
  const train = (t as Record<string, unknown>) ?? {};
  const o = parseJson(trainSource, 'vqvae.optimizer', tf.metadata['vqvae.optimizer']) as
    | { stepCount: number; lr: number; betas: [number, number]; eps: number; weightDecay: number; steps: Record<string, number> }
    | undefined;
  if (!optimizer || !o) return { train, adamState: null };
  const names = paramNames(model, optimizer);
  const adamState: AdamState = {
    stepCount: o.stepCount,
    lr: o.lr,
    betas: o.betas,
    eps: o.eps,
    weightDecay: o.weightDecay,
    params: names.map((internal, i) => {
      const n = file.show(internal);
      const s = o.steps?.[n];
      if (s === undefined) return null;
      const m = tf.tensors.get(`${n}.exp_avg`);
      const v = tf.tensors.get(`${n}.exp_avg_sq`);
      const size = optimizer.params[i].size;
      if (!m || !v) throw new CheckpointError(`${trainSource}: optimizer state for '${n}' is incomplete`);
      const mv = toFloat32(m);
      const vv = toFloat32(v);
      if (mv.length !== size || vv.length !== size) throw new CheckpointError(`${trainSource}: optimizer state for '${n}' has the wrong size`);
      if (!Number.isInteger(s) || s < 1) throw new CheckpointError(`${trainSource}: optimizer step for '${n}' is invalid`);
      return { step: s, m: mv, v: vv };
    }),
  };
  if (typeof adamState.lr !== 'number' || !Number.isFinite(adamState.lr)) throw new CheckpointError(`${trainSource}: optimizer lr is invalid`);
  return { train, adamState };
}

/** Writes a validated load into the model (and optimiser). */
function applyLoad(vm: ValidModel, vt: ValidTrain | null, model: VqVae, optimizer: Adam | null | undefined): CheckpointInfo {
  const r = rt();
  for (const [name, data] of vm.values) r.overwrite(model.state.get(name)!.buffer, data);
  if (model.ema && vm.emaMeta) {
    if (typeof vm.emaMeta.step === 'number' && vm.emaMeta.step >= 0) model.ema.step = vm.emaMeta.step;
    if (Array.isArray(vm.emaMeta.rng)) model.ema.rng.setState(vm.emaMeta.rng as number[]);
  }
  if (vt?.adamState && optimizer) optimizer.loadState(vt.adamState);
  return { step: vm.step, config: vm.config, train: vt ? vt.train : null, names: vm.names, format: vm.format, key: vm.key };
}

/**
 * Loads a model blob into `model` (and, when given and asked for, the optimiser's state from
 * the train blob). Everything is validated first, the model blob before the train blob; on
 * any error the model and optimiser are left untouched.
 */
export async function loadCheckpointBytes(modelBytes: Bytes, model: VqVae, opts: LoadCheckpointBytesOptions = {}): Promise<CheckpointInfo> {
  const source = opts.source ?? DEFAULT_SOURCE;
  const trainSource = opts.trainSource ?? defaultTrainSource(source);
  const file = decodeModel(modelBytes, source, opts.onWarning ?? warn);
  const vm = validateModel(file, model, source);
  const vt = opts.trainBytes ? validateTrain(decode(opts.trainBytes, trainSource), file, model, opts.optimizer, source, trainSource) : null;
  return applyLoad(vm, vt, model, opts.optimizer);
}

/**
 * A model built from a model blob's stored config (or, for a PyTorch-written file, the
 * architecture its shapes give), with its weights (and train info) loaded.
 * Both blobs are decoded, and the config, tensor names and shapes checked, before the model
 * allocates any GPU memory, so a hostile blob never drives an allocation; on a later error
 * the model is disposed.
 */
export async function modelFromCheckpointBytes(
  bytes: Bytes,
  source = DEFAULT_SOURCE,
  opts: { trainBytes?: Bytes | null; trainSource?: string; onWarning?: (message: string) => void } = {},
): Promise<{ model: VqVae; info: CheckpointInfo }> {
  const trainSource = opts.trainSource ?? defaultTrainSource(source);
  const file = decodeModel(bytes, source, opts.onWarning ?? warn);
  const config = requireConfig(file, source);
  const layout = stateLayout(config);
  checkNames(file, layout, source);
  for (const [name, shape] of layout) checkShape(file, source, name, file.tensors.get(name)!.shape, shape);
  const tf = opts.trainBytes ? decode(opts.trainBytes, trainSource) : null;
  const model = new VqVae(config);
  try {
    const vm = validateModel(file, model, source);
    const vt = tf ? validateTrain(tf, file, model, null, source, trainSource) : null;
    return { model, info: applyLoad(vm, vt, model, null) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

export interface ConvertResult {
  /** The safetensors bytes. */
  bytes: Uint8Array;
  /** The naming scheme written, or null for a state_dict that is not this VQ-VAE's (names kept). */
  names: NameScheme | null;
  /** The architecture read off the shapes (null when not this VQ-VAE's). */
  config: VqVaeConfig | null;
  tensors: number;
  /** The key of a whole training checkpoint the state_dict came from, else null. */
  key: string | null;
}

/**
 * A state_dict (torch.save .pt bytes, or safetensors) as safetensors bytes. A VQ-VAE state_dict
 * is checked against the architecture its shapes give (every name, shape and value) and written
 * under `names` (default: the scheme it came in) with that config in its metadata, so every
 * command here loads it; any other state_dict is written with its names as they are, and
 * asking for `names` then is an error.
 */
export function convertStateDict(bytes: Bytes, source = DEFAULT_SOURCE, opts: { names?: NameScheme; onWarning?: (message: string) => void } = {}): ConvertResult {
  const blob = decodeRaw(bytes, source, opts.onWarning ?? warn); // an unreadable file throws here
  let vq: { file: ModelBlob; config: VqVaeConfig } | null = null;
  try {
    const file = withScheme(blob, source);
    const config = requireConfig(file, source);
    const layout = stateLayout(config);
    checkNames(file, layout, source);
    for (const [name, shape] of layout) checkShape(file, source, name, file.tensors.get(name)!.shape, shape);
    vq = { file, config };
  } catch (e) {
    if (!(e instanceof CheckpointError)) throw e;
    if (opts.names) throw new CheckpointError(`${e.message} (names can be changed only in this VQ-VAE's state_dicts)`);
  }
  if (vq) {
    const { file, config } = vq;
    const scheme = opts.names ?? file.names;
    const entries: Record<string, WriteEntry> = {};
    for (const name of stateLayout(config).keys()) {
      const t = file.tensors.get(name)!;
      const v = toFloat32(t);
      const bad = v.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new CheckpointError(`${source}: '${file.show(name)}' holds a non-finite value (${v[bad]}) at element ${bad}`);
      entries[toScheme(name, scheme)] = { dtype: 'F32', shape: [...t.shape], data: v };
    }
    const meta = { format: 'pt', 'vqvae.config': JSON.stringify(config), 'vqvae.names': scheme };
    return { bytes: encodeSafetensors(entries, meta), names: scheme, config, tensors: Object.keys(entries).length, key: blob.key };
  }
  // any other state_dict: its tensors as they are
  const entries: Record<string, WriteEntry> = {};
  for (const [n, t] of blob.raw.tensors) entries[n] = { dtype: t.dtype, shape: [...t.shape], data: t.bytes.slice() };
  return { bytes: encodeSafetensors(entries, { format: 'pt', ...blob.raw.metadata }), names: null, config: null, tensors: blob.raw.tensors.size, key: blob.key };
}

/**
 * Starts `model` from the weights of a model blob (ours, or a PyTorch-written safetensors or
 * .pt state_dict, either naming scheme), as train --init-from does: the weights only, not the
 * step, the optimiser or the EMA statistics' history. The model's sizes must match the file's.
 * An EMA model given a file without EMA buffers restarts its averages from the loaded
 * codebook; a file's EMA buffers are ignored by a model without an EMA codebook (a message
 * says so). Everything is validated before the model is touched.
 */
export async function initFromCheckpointBytes(
  bytes: Bytes,
  model: VqVae,
  opts: { source?: string; onWarning?: (message: string) => void } = {},
): Promise<CheckpointInfo> {
  const source = opts.source ?? DEFAULT_SOURCE;
  const onWarning = opts.onWarning ?? warn;
  const file = decodeModel(bytes, source, onWarning);
  const stored = storedConfig(file, source);
  if (stored) {
    const diff = ARCH_KEYS.filter((k) => k !== 'ema' && stored[k] !== model.config[k]);
    if (diff.length) throw new CheckpointError(`${source}: its model differs from this one in ${diff.map((k) => `${k} (file ${stored[k]}, model ${model.config[k]})`).join(', ')}`);
  }
  const fileHasEma = file.tensors.has(EMA_COUNT) || file.tensors.has(EMA_SUM);
  const tensors = new Map(file.tensors);
  if (fileHasEma && !model.ema) {
    tensors.delete(EMA_COUNT);
    tensors.delete(EMA_SUM);
    onWarning(`${source}: its EMA codebook statistics are not used (this model trains its codebook by the loss)`);
  }
  const layout = new Map(paramSpecs(model.config).map((s) => [s.name, s.shape as readonly number[]]));
  if (model.ema && fileHasEma) for (const n of [EMA_COUNT, EMA_SUM]) layout.set(n, model.state.get(n)!.shape);
  const view: ModelBlob = { ...file, tensors, metadata: {} };
  checkNames(view, layout, source);
  const values = new Map<string, Float32Array>();
  for (const [name, shape] of layout) {
    const st = tensors.get(name)!;
    checkShape(view, source, name, st.shape, shape);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(st.dtype)) throw new CheckpointError(`${source}: '${file.show(name)}' is ${st.dtype}, expected a float type`);
    const v = toFloat32(st);
    const bad = v.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointError(`${source}: '${file.show(name)}' holds a non-finite value (${v[bad]}) at element ${bad}`);
    values.set(name, v);
  }
  const r = rt();
  for (const [name, data] of values) r.overwrite(model.state.get(name)!.buffer, data);
  if (model.ema && !fileHasEma) model.ema.resetState();
  return { step: 0, config: model.config, train: null, names: file.names, format: file.format, key: file.key };
}
