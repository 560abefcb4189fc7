// Checkpoints as two files, written atomically (Node-only; the format and all validation live
// in checkpoint.ts, which works on bytes):
//   <base>.safetensors        the model blob;
//   <base>.train.safetensors  the train blob (optimiser moments + trainer state), when saved.
// Errors name the file paths.
import { existsSync } from 'node:fs';
import type { Adam } from '../engine/optim.js';
import type { VqVaeConfig } from './config.js';
import { CheckpointError, type CheckpointInfo, checkpointConfigFromBytes, encodeCheckpoint, loadCheckpointBytes, modelFromCheckpointBytes } from './checkpoint.js';
import { SafetensorsError } from './safetensors.js';
import { readFileBytes, writeFileAtomic } from './safetensors_file.js';
import type { VqVae } from './vqvae.js';

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
function readTrainBytes(base: string): Uint8Array | undefined {
  const tpath = trainPath(base);
  return existsSync(tpath) ? readBytes(tpath) : undefined;
}

/** Reads and validates the config stored in a checkpoint (no GPU work). */
export function checkpointConfig(base: string): VqVaeConfig {
  const path = modelPath(base);
  return checkpointConfigFromBytes(readBytes(path), path);
}

/**
 * Loads `<base>.safetensors` into `model` (and, when present and asked for, the optimiser's
 * state from `<base>.train.safetensors`). Everything is validated first; on any error the
 * model and optimiser are left untouched.
 */
export async function loadCheckpoint(base: string, model: VqVae, opts: { optimizer?: Adam | null } = {}): Promise<CheckpointInfo> {
  const path = modelPath(base);
  const modelBytes = readBytes(path);
  return loadCheckpointBytes(modelBytes, model, { trainBytes: readTrainBytes(base), optimizer: opts.optimizer, source: path, trainSource: trainPath(base) });
}

/** A model built from a checkpoint's stored config, with its weights loaded. */
export async function modelFromCheckpoint(base: string): Promise<{ model: VqVae; info: CheckpointInfo }> {
  const path = modelPath(base);
  const modelBytes = readBytes(path);
  return modelFromCheckpointBytes(modelBytes, path, { trainBytes: readTrainBytes(base), trainSource: trainPath(base) });
}
