// The files of a run folder and its checkpoints:
//   runs/<name>/config.json            resolved options (+ what the run ran on)
//   runs/<name>/status.json            running | finished | interrupted | diverged | failed
//   runs/<name>/metrics.jsonl, .csv    one row per logged step and per validation
//   runs/<name>/loss.png, perplexity.png
//   runs/<name>/recon/step-NNNNNN.png, recon/final.png   originals over reconstructions
//   runs/<name>/checkpoints/step-NNNNNN.safetensors (+ .train.safetensors)   the newest few
//   runs/<name>/checkpoints/latest.json  which step checkpoint is the latest (written last)
//   runs/<name>/checkpoints/latest.safetensors   its model file (a hard link), for PyTorch
//   runs/<name>/checkpoints/best.safetensors   lowest validation loss (model only)
//   runs/<name>/eval.json               the final evaluation
//   runs/<name>/log.txt                 the messages printed while it ran
// A step checkpoint is complete once latest.json names it, so a crash while saving leaves the
// previous one as the latest.
import { appendFileSync, copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { modelPath, trainPath } from '../model/checkpoint_files.js';
import { tmpPath, writeFileAtomic } from './atomic.js';

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

export function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export type RunState = 'running' | 'finished' | 'interrupted' | 'diverged' | 'failed';

export interface RunStatus {
  state: RunState;
  step: number;
  steps: number;
  updated: string;
  message?: string;
  checkpoint?: string | null;
}

export class RunFiles {
  constructor(readonly dir: string) {}

  get config(): string {
    return join(this.dir, 'config.json');
  }
  get status(): string {
    return join(this.dir, 'status.json');
  }
  get metricsJsonl(): string {
    return join(this.dir, 'metrics.jsonl');
  }
  get metricsCsv(): string {
    return join(this.dir, 'metrics.csv');
  }
  get lossPng(): string {
    return join(this.dir, 'loss.png');
  }
  get perplexityPng(): string {
    return join(this.dir, 'perplexity.png');
  }
  get reconDir(): string {
    return join(this.dir, 'recon');
  }
  get checkpointDir(): string {
    return join(this.dir, 'checkpoints');
  }
  get latestPointer(): string {
    return join(this.checkpointDir, 'latest.json');
  }
  get best(): string {
    return join(this.checkpointDir, 'best');
  }
  get evalJson(): string {
    return join(this.dir, 'eval.json');
  }
  get log(): string {
    return join(this.dir, 'log.txt');
  }

  reconPath(step: number | 'final'): string {
    return join(this.reconDir, step === 'final' ? 'final.png' : `step-${String(step).padStart(6, '0')}.png`);
  }

  stepBase(step: number): string {
    return join(this.checkpointDir, `step-${String(step).padStart(6, '0')}`);
  }

  make(): void {
    mkdirSync(this.checkpointDir, { recursive: true });
    mkdirSync(this.reconDir, { recursive: true });
  }

  writeStatus(s: Omit<RunStatus, 'updated'>): void {
    writeJsonAtomic(this.status, { ...s, updated: new Date().toISOString() });
  }

  readStatus(): RunStatus | null {
    return readJson<RunStatus>(this.status);
  }

  appendLog(line: string): void {
    try {
      appendFileSync(this.log, line.endsWith('\n') ? line : line + '\n');
    } catch {
      /* the log file is a convenience */
    }
  }

  /** Step checkpoints on disk (bases, newest first). */
  stepCheckpoints(): { base: string; step: number }[] {
    if (!existsSync(this.checkpointDir)) return [];
    return readdirSync(this.checkpointDir)
      .map((f) => /^step-(\d+)\.safetensors$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ base: join(this.checkpointDir, `step-${m[1]}`), step: Number(m[1]) }))
      .sort((a, b) => b.step - a.step);
  }

  /** The latest complete step checkpoint: latest.json's, else the newest on disk, else null. */
  latest(): { base: string; step: number } | null {
    const p = readJson<{ base: string; step: number }>(this.latestPointer);
    if (p && typeof p.base === 'string' && existsSync(modelPath(join(this.checkpointDir, p.base)))) {
      return { base: join(this.checkpointDir, p.base), step: p.step };
    }
    return this.stepCheckpoints()[0] ?? null;
  }

  /** Deletes the step checkpoints after `step` (on resume they belong to a history being replaced). */
  dropCheckpointsAfter(step: number): void {
    for (const c of this.stepCheckpoints()) {
      if (c.step <= step) continue;
      rmSync(modelPath(c.base), { force: true });
      rmSync(trainPath(c.base), { force: true });
    }
  }

  /** Model-only alias of the latest step checkpoint (for loading into PyTorch). */
  get latestModel(): string {
    return join(this.checkpointDir, 'latest.safetensors');
  }

  /**
   * Marks `step`'s checkpoint as the latest (and hard-links its model file as
   * latest.safetensors, a copy where links are unsupported), then deletes all but the newest
   * `keep` step checkpoints.
   */
  commitCheckpoint(step: number, keep: number): void {
    const base = this.stepBase(step);
    writeJsonAtomic(this.latestPointer, { base: `step-${String(step).padStart(6, '0')}`, step });
    const tmp = tmpPath(this.latestModel);
    rmSync(tmp, { force: true });
    try {
      linkSync(modelPath(base), tmp);
    } catch {
      copyFileSync(modelPath(base), tmp);
    }
    renameSync(tmp, this.latestModel);
    for (const c of this.stepCheckpoints().slice(Math.max(1, keep))) {
      if (c.base === base) continue;
      rmSync(modelPath(c.base), { force: true });
      rmSync(trainPath(c.base), { force: true });
    }
  }
}
