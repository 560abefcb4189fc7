// Checkpoints as two safetensors files written atomically:
//   <base>.safetensors        the model's state_dict under the seed's PyTorch names and layouts
//                             (loads into the PyTorch model with load_state_dict(strict=True)),
//                             with the resolved config and step in its metadata;
//   <base>.train.safetensors  Adam's moments per parameter plus the trainer's state (step, RNG
//                             states, data order, ...) as JSON metadata.
// Both carry the same random id, so a model file never pairs with another run's train state.
// Loading validates every file, name, dtype, shape and value before touching the model.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Adam, AdamState } from '../engine/optim.js';
import { rt } from '../engine/runtime.js';
import { type ParsedSafetensors, SafetensorsError, type WriteEntry, readSafetensors, toFloat32, writeSafetensors } from './safetensors.js';
import { type VqVaeConfig, resolveConfig } from './config.js';
import { VqVae } from './vqvae.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointInfo {
  step: number;
  config: VqVaeConfig;
  /** Trainer state saved with the checkpoint (JSON), or null for a model-only file. */
  train: Record<string, unknown> | null;
}

const ARCH_KEYS: (keyof VqVaeConfig)[] = ['inChannels', 'hidden', 'residualHidden', 'residualBlocks', 'codebookSize', 'embeddingDim', 'ema'];

export function modelPath(base: string): string {
  return `${base}.safetensors`;
}
export function trainPath(base: string): string {
  return `${base}.train.safetensors`;
}

/** Writes model (and optimiser/trainer state when given) to `<base>.safetensors` (+ `.train.safetensors`). */
export async function saveCheckpoint(
  base: string,
  model: VqVae,
  opts: { step: number; optimizer?: Adam | null; train?: Record<string, unknown> },
): Promise<void> {
  const id = randomBytes(8).toString('hex');
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
  if (opts.optimizer || opts.train) {
    const trainEntries: Record<string, WriteEntry> = {};
    let optimizer: Omit<AdamState, 'params'> & { steps: Record<string, number> } | null = null;
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
    // train state first: a crash between the two writes leaves a new train file whose id
    // does not match the old model file, which loading refuses (never a silent mismatch).
    writeSafetensors(trainPath(base), trainEntries, trainMeta);
  }
  writeSafetensors(modelPath(base), entries, modelMeta);
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

function read(path: string): ParsedSafetensors {
  try {
    return readSafetensors(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(`${path}: no such checkpoint file`);
    throw e;
  }
}

/** Reads and validates the config stored in a checkpoint (no GPU work). */
export function checkpointConfig(base: string): VqVaeConfig {
  const path = modelPath(base);
  const { metadata } = read(path);
  const raw = parseJson(path, 'vqvae.config', metadata['vqvae.config']);
  if (raw === undefined) throw new CheckpointError(`${path}: no 'vqvae.config' metadata (a PyTorch-written file? pass the model to load it into)`);
  try {
    return resolveConfig(raw as Partial<VqVaeConfig>);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  }
}

/**
 * Loads `<base>.safetensors` into `model` (and, when present and asked for, the optimiser's
 * state from `<base>.train.safetensors`). Everything is validated first; on any error the
 * model and optimiser are left untouched.
 */
export async function loadCheckpoint(base: string, model: VqVae, opts: { optimizer?: Adam | null } = {}): Promise<CheckpointInfo> {
  const path = modelPath(base);
  const file = read(path);
  const { tensors, metadata } = file;

  // config: must match the model's architecture when the file states one
  const rawConfig = parseJson(path, 'vqvae.config', metadata['vqvae.config']);
  let config = model.config;
  if (rawConfig !== undefined) {
    try {
      config = resolveConfig(rawConfig as Partial<VqVaeConfig>);
    } catch (e) {
      throw new CheckpointError(`${path}: ${(e as Error).message}`);
    }
    const diff = ARCH_KEYS.filter((k) => config[k] !== model.config[k]);
    if (diff.length) {
      throw new CheckpointError(`${path}: saved model differs from this one in ${diff.map((k) => `${k} (file ${config[k]}, model ${model.config[k]})`).join(', ')}`);
    }
  }

  // names, shapes, values
  const expected = [...model.state.keys()];
  const missing = expected.filter((n) => !tensors.has(n));
  const unexpected = [...tensors.keys()].filter((n) => !model.state.has(n));
  if (missing.length || unexpected.length) {
    throw new CheckpointError(
      `${path}: state_dict names do not match the model` +
        (missing.length ? `; missing: ${missing.join(', ')}` : '') +
        (unexpected.length ? `; unexpected: ${unexpected.join(', ')}` : ''),
    );
  }
  const values = new Map<string, Float32Array>();
  for (const name of expected) {
    const t = model.state.get(name)!;
    const st = tensors.get(name)!;
    if (st.shape.join() !== t.shape.join()) {
      throw new CheckpointError(`${path}: '${name}' has shape [${st.shape.join(', ')}], the model needs [${t.shape.join(', ')}]`);
    }
    if (!['F32', 'F16', 'BF16', 'F64'].includes(st.dtype)) throw new CheckpointError(`${path}: '${name}' is ${st.dtype}, expected a float type`);
    const v = toFloat32(st);
    const bad = v.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointError(`${path}: '${name}' holds a non-finite value (${v[bad]}) at element ${bad}`);
    values.set(name, v);
  }
  const step = metadata['vqvae.step'] === undefined ? 0 : Number(metadata['vqvae.step']);
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`${path}: metadata 'vqvae.step' is not a non-negative integer`);
  const emaMeta = parseJson(path, 'vqvae.ema', metadata['vqvae.ema']) as { step?: unknown; rng?: unknown } | undefined;

  // optional train state (optimiser moments + trainer JSON)
  let train: Record<string, unknown> | null = null;
  let adamState: AdamState | null = null;
  const tpath = trainPath(base);
  if (existsSync(tpath)) {
    const tf = read(tpath);
    if (tf.metadata['vqvae.id'] !== metadata['vqvae.id']) {
      throw new CheckpointError(`${tpath} belongs to another checkpoint than ${path} (ids ${tf.metadata['vqvae.id']} and ${metadata['vqvae.id']}); the save was interrupted or files were mixed`);
    }
    const t = parseJson(tpath, 'vqvae.train', tf.metadata['vqvae.train']);
    if (t !== undefined && (typeof t !== 'object' || t === null || Array.isArray(t))) throw new CheckpointError(`${tpath}: 'vqvae.train' is not a JSON object`);
    train = (t as Record<string, unknown>) ?? {};
    const o = parseJson(tpath, 'vqvae.optimizer', tf.metadata['vqvae.optimizer']) as
      | { stepCount: number; lr: number; betas: [number, number]; eps: number; weightDecay: number; steps: Record<string, number> }
      | undefined;
    if (opts.optimizer && o) {
      const names = paramNames(model, opts.optimizer);
      adamState = {
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
          const size = opts.optimizer!.params[i].size;
          if (!m || !v) throw new CheckpointError(`${tpath}: optimizer state for '${n}' is incomplete`);
          const mv = toFloat32(m);
          const vv = toFloat32(v);
          if (mv.length !== size || vv.length !== size) throw new CheckpointError(`${tpath}: optimizer state for '${n}' has the wrong size`);
          if (!Number.isInteger(s) || s < 1) throw new CheckpointError(`${tpath}: optimizer step for '${n}' is invalid`);
          return { step: s, m: mv, v: vv };
        }),
      };
      if (typeof adamState.lr !== 'number' || !Number.isFinite(adamState.lr)) throw new CheckpointError(`${tpath}: optimizer lr is invalid`);
    }
  }

  // all valid: write
  const r = rt();
  for (const [name, v] of values) r.overwrite(model.state.get(name)!.buffer, v);
  if (model.ema && emaMeta) {
    if (typeof emaMeta.step === 'number' && emaMeta.step >= 0) model.ema.step = emaMeta.step;
    if (Array.isArray(emaMeta.rng)) model.ema.rng.setState(emaMeta.rng as number[]);
  }
  if (adamState && opts.optimizer) opts.optimizer.loadState(adamState);
  return { step, config, train };
}

/** A model built from a checkpoint's stored config, with its weights loaded. */
export async function modelFromCheckpoint(base: string): Promise<{ model: VqVae; info: CheckpointInfo }> {
  const model = new VqVae(checkpointConfig(base));
  try {
    const info = await loadCheckpoint(base, model);
    return { model, info };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
