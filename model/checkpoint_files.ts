// Checkpoints as two files, written atomically (Node-only; the format and all validation live
// in checkpoint.ts, which works on bytes):
//   <base>.safetensors        the model blob;
//   <base>.train.safetensors  the train blob (optimiser moments + trainer state), when saved.
// Loading takes a base or a file path: `<base>.safetensors`, or a PyTorch `.pt` / `.pth` file
// (a state_dict, or a whole training checkpoint holding one; never with train state).
// Errors name the file paths.
import { existsSync } from 'node:fs';
import type { Adam } from '../engine/optim.js';
import type { VqVaeConfig } from './config.js';
import type { NameScheme } from './names.js';
import { CheckpointError, type CheckpointInfo, checkpointConfigFromBytes, encodeCheckpoint, initFromCheckpointBytes, loadCheckpointBytes, modelFromCheckpointBytes } from './checkpoint.js';
import { SafetensorsError } from './safetensors.js';
import { readFileBytes, writeFileAtomic } from './safetensors_file.js';
import type { VqVae } from './vqvae.js';

export function modelPath(base: string): string {
  return `${base}.safetensors`;
}
export function trainPath(base: string): string {
  return `${base}.train.safetensors`;
}

/** File extensions read as torch.save archives. */
export const PT_EXTENSIONS = ['.pt', '.pth'];

/**
 * The files a checkpoint argument names: a .pt / .pth file alone, a `.safetensors` path (with
 * its `.train.safetensors` beside it), or a base path (`<base>.safetensors` + train file).
 */
export function checkpointFiles(pathOrBase: string): { model: string; train: string | null } {
  if (PT_EXTENSIONS.some((e) => pathOrBase.toLowerCase().endsWith(e))) return { model: pathOrBase, train: null };
  const base = pathOrBase.replace(/(\.train)?\.safetensors$/, '');
  return { model: modelPath(base), train: trainPath(base) };
}

/** Writes model (and optimiser/trainer state when given) to `<base>.safetensors` (+ `.train.safetensors`). */
export async function saveCheckpoint(
  base: string,
  model: VqVae,
  opts: { step: number; optimizer?: Adam | null; train?: Record<string, unknown>; names?: NameScheme },
): Promise<void> {
  const bytes = await encodeCheckpoint(model, opts);
  // train state first: a crash between the two writes leaves a new train file whose id
  // does not match the old model file, which loading refuses (never a silent mismatch).
  if (bytes.train) writeFileAtomic(trainPath(base), bytes.train);
  writeFileAtomic(modelPath(base), bytes.model);
}

/** A checkpoint file's bytes; a missing or oversized file is a CheckpointError naming it. */
function readBytes(path: string): Uint8Array {
  try {
    return readFileBytes(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError(`${path}: no such checkpoint file`);
    throw e;
  }
}

/** The train file's bytes, or undefined when there is none (a model-only checkpoint). */
function readTrainBytes(tpath: string | null): Uint8Array | undefined {
  return tpath && existsSync(tpath) ? readBytes(tpath) : undefined;
}

/** Reads and validates the config stored in a checkpoint, or read off a PyTorch file's shapes (no GPU work). */
export function checkpointConfig(pathOrBase: string): VqVaeConfig {
  const { model } = checkpointFiles(pathOrBase);
  return checkpointConfigFromBytes(readBytes(model), model);
}

/**
 * Loads a checkpoint (see checkpointFiles) into `model` (and, when present and asked for, the
 * optimiser's state from its train file). Everything is validated first; on any error the
 * model and optimiser are left untouched.
 */
export async function loadCheckpoint(
  pathOrBase: string,
  model: VqVae,
  opts: { optimizer?: Adam | null; onWarning?: (message: string) => void } = {},
): Promise<CheckpointInfo> {
  const f = checkpointFiles(pathOrBase);
  const modelBytes = readBytes(f.model);
  return loadCheckpointBytes(modelBytes, model, { trainBytes: readTrainBytes(f.train), optimizer: opts.optimizer, source: f.model, trainSource: f.train ?? undefined, onWarning: opts.onWarning });
}

/** A model built from a checkpoint's stored config (or a PyTorch file's shapes), with its weights loaded. */
export async function modelFromCheckpoint(pathOrBase: string, opts: { onWarning?: (message: string) => void } = {}): Promise<{ model: VqVae; info: CheckpointInfo }> {
  const f = checkpointFiles(pathOrBase);
  const modelBytes = readBytes(f.model);
  return modelFromCheckpointBytes(modelBytes, f.model, { trainBytes: readTrainBytes(f.train), trainSource: f.train ?? undefined, onWarning: opts.onWarning });
}

/** Starts `model` from a checkpoint file's weights (train --init-from; see initFromCheckpointBytes). */
export async function initFromCheckpoint(path: string, model: VqVae, opts: { onWarning?: (message: string) => void } = {}): Promise<CheckpointInfo> {
  const f = checkpointFiles(path);
  return initFromCheckpointBytes(readBytes(f.model), model, { source: f.model, onWarning: opts.onWarning });
}
