// Checkpoints as two safetensors blobs (files on Node, see checkpoint_files.ts; picked files
// and downloads in a page):
//   model  the model's state_dict under the seed's PyTorch names and layouts (loads into the
//          PyTorch model with load_state_dict(strict=True)), with the resolved config and step
//          in its metadata;
//   train  Adam's moments per parameter plus the trainer's state (step, RNG states, data
//          order, ...) as JSON metadata.
// Both carry the same random id, so a model blob never pairs with another run's train state.
// Loading validates every blob, name, dtype, shape and value before touching the model.
// Platform-free (no Node modules): bytes in, bytes out.
import type { Adam, AdamState } from '../engine/optim.js';
import { rt } from '../engine/runtime.js';
import { type ParsedSafetensors, SafetensorsError, type WriteEntry, decodeSafetensors, encodeSafetensors, toFloat32 } from './safetensors.js';
import { type VqVaeConfig, resolveConfig } from './config.js';
import { paramSpecs } from './params.js';
import { CODEBOOK, EMA_COUNT, EMA_SUM, VqVae } from './vqvae.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointInfo {
  step: number;
  config: VqVaeConfig;
  /** Trainer state saved with the checkpoint (JSON), or null for a model-only file. */
  train: Record<string, unknown> | null;
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
}

export interface LoadCheckpointBytesOptions {
  /** The train blob (absent: no train state, as when `<base>.train.safetensors` does not exist). */
  trainBytes?: Uint8Array | ArrayBuffer | null;
  optimizer?: Adam | null;
  /** Names the model blob in errors (a path, or a picked file's name). */
  source?: string;
  /** Names the train blob in errors. */
  trainSource?: string;
}

type Bytes = Uint8Array | ArrayBuffer;

const ARCH_KEYS: (keyof VqVaeConfig)[] = ['inChannels', 'hidden', 'residualHidden', 'residualBlocks', 'codebookSize', 'embeddingDim', 'ema'];

const DEFAULT_SOURCE = 'checkpoint';
const defaultTrainSource = (source: string) => `${source} (train state)`;

/** 8 random bytes as hex, from the Web Crypto API (Node 20 and browsers). */
function randomId(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** The bytes `saveCheckpoint` writes: the model blob, plus the train blob when an optimiser or trainer state is given. */
export async function encodeCheckpoint(model: VqVae, opts: EncodeCheckpointOptions): Promise<CheckpointBytes> {
  const id = opts.id ?? randomId();
  const entries: Record<string, WriteEntry> = {};
  for (const [name, t] of model.state) {
    entries[name] = { dtype: 'F32', shape: [...t.shape], data: (await t.read()) as Float32Array };
  }
  const modelMeta: Record<string, string> = {
    format: 'pt',
    'vqvae.id': id,
    'vqvae.step': String(opts.step),
    'vqvae.config': JSON.stringify(model.config),
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
        trainEntries[`${names[i]}.exp_avg`] = { dtype: 'F32', shape, data: p.m };
        trainEntries[`${names[i]}.exp_avg_sq`] = { dtype: 'F32', shape, data: p.v };
        steps[names[i]] = p.step;
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

function requireConfig(file: ParsedSafetensors, source: string): VqVaeConfig {
  const config = storedConfig(file, source);
  if (!config) throw new CheckpointError(`${source}: no 'vqvae.config' metadata (a PyTorch-written file? pass the model to load it into)`);
  return config;
}

/** Reads and validates the config stored in a checkpoint's model blob (no GPU work). */
export function checkpointConfigFromBytes(bytes: Bytes, source = DEFAULT_SOURCE): VqVaeConfig {
  return requireConfig(decode(bytes, source), source);
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

/** The blob holds exactly the expected tensor names (errors list the missing and the unexpected). */
function checkNames(file: ParsedSafetensors, expected: ReadonlyMap<string, readonly number[]>, source: string): void {
  const missing = [...expected.keys()].filter((n) => !file.tensors.has(n));
  const unexpected = [...file.tensors.keys()].filter((n) => !expected.has(n));
  if (missing.length || unexpected.length) {
    throw new CheckpointError(
      `${source}: state_dict names do not match the model` +
        (missing.length ? `; missing: ${missing.join(', ')}` : '') +
        (unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''),
    );
  }
}

function checkShape(source: string, name: string, got: readonly number[], want: readonly number[]): void {
  if (got.join() !== want.join()) {
    throw new CheckpointError(`${source}: '${name}' has shape [${got.join(', ')}], the model needs [${want.join(', ')}]`);
  }
}

/** A model blob validated against a model: everything a load writes into the model. */
interface ValidModel {
  values: Map<string, Float32Array>;
  emaMeta: { step?: unknown; rng?: unknown } | undefined;
  step: number;
  config: VqVaeConfig;
}

/** Validates a decoded model blob against `model`; touches nothing. */
function validateModel(file: ParsedSafetensors, model: VqVae, source: string): ValidModel {
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
    checkShape(source, name, st.shape, t.shape);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(st.dtype)) throw new CheckpointError(`${source}: '${name}' is ${st.dtype}, expected a float type`);
    const v = toFloat32(st);
    const bad = v.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointError(`${source}: '${name}' holds a non-finite value (${v[bad]}) at element ${bad}`);
    values.set(name, v);
  }
  const step = metadata['vqvae.step'] === undefined ? 0 : Number(metadata['vqvae.step']);
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`${source}: metadata 'vqvae.step' is not a non-negative integer`);
  const emaMeta = parseJson(source, 'vqvae.ema', metadata['vqvae.ema']) as ValidModel['emaMeta'];
  return { values, emaMeta, step, config };
}

/** A train blob validated against its model blob and the optimiser. */
interface ValidTrain {
  train: Record<string, unknown>;
  adamState: AdamState | null;
}

/** Validates a decoded train blob (optimiser moments + trainer JSON); touches nothing. */
function validateTrain(
  tf: ParsedSafetensors,
  file: ParsedSafetensors,
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
    params: names.map((n, i) => {
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
  return { step: vm.step, config: vm.config, train: vt ? vt.train : null };
}

/**
 * Loads a model blob into `model` (and, when given and asked for, the optimiser's state from
 * the train blob). Everything is validated first, the model blob before the train blob; on
 * any error the model and optimiser are left untouched.
 */
export async function loadCheckpointBytes(modelBytes: Bytes, model: VqVae, opts: LoadCheckpointBytesOptions = {}): Promise<CheckpointInfo> {
  const source = opts.source ?? DEFAULT_SOURCE;
  const trainSource = opts.trainSource ?? defaultTrainSource(source);
  const file = decode(modelBytes, source);
  const vm = validateModel(file, model, source);
  const vt = opts.trainBytes ? validateTrain(decode(opts.trainBytes, trainSource), file, model, opts.optimizer, source, trainSource) : null;
  return applyLoad(vm, vt, model, opts.optimizer);
}

/**
 * A model built from a model blob's stored config, with its weights (and train info) loaded.
 * Both blobs are decoded, and the config, tensor names and shapes checked, before the model
 * allocates any GPU memory, so a hostile blob never drives an allocation; on a later error
 * the model is disposed.
 */
export async function modelFromCheckpointBytes(
  bytes: Bytes,
  source = DEFAULT_SOURCE,
  opts: { trainBytes?: Bytes | null; trainSource?: string } = {},
): Promise<{ model: VqVae; info: CheckpointInfo }> {
  const trainSource = opts.trainSource ?? defaultTrainSource(source);
  const file = decode(bytes, source);
  const config = requireConfig(file, source);
  const layout = stateLayout(config);
  checkNames(file, layout, source);
  for (const [name, shape] of layout) checkShape(source, name, file.tensors.get(name)!.shape, shape);
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
