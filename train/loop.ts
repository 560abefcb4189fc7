// The run loop both trainers share (the VQ-VAE's in trainer.ts, the prior's in prior.ts): the
// run folder (new, resumed or overwritten), the step loop with abort and the divergence stop,
// metric rows, progress, and the validation and checkpoint cadences. A trainer supplies a
// LoopTask: its step, its rows, its validation and what its checkpoints hold.
//
// Trust:
// - The GPU never waits for the CPU between steps. Each step copies its scalars (losses) on the
//   GPU into a ring of staging rows (engine/readback.ts) that the loop takes RING_ROWS - 1 steps
//   later, when the GPU has finished them; taking the oldest row before recording a step is the
//   CPU's only wait, and keeps it at most that many steps ahead. Rows are checked as they are
//   taken (a NaN or infinite loss stops the run: 'diverged') and summarised into a train row at
//   each interval's closing step.
// - Only what needs the GPU's results waits for them: a checkpoint (the weights) and a
//   validation (its losses) take every pending row first, so a checkpoint is written only after
//   every step before it was checked and the weights are finite; a log row needs only the ring.
// - An abort (the CLI's Ctrl-C / SIGTERM) finishes the current step, saves and returns
//   'interrupted'.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { MetricsRing, type RingRow } from '../engine/readback.js';
import { type Runtime } from '../engine/runtime.js';
import type { Tensor } from '../engine/tensor.js';
import { modelPath } from '../model/checkpoint_files.js';
import { MetricsLog, type RowBase } from './metrics.js';
import { Progress, type ProgressMode, type ProgressState, StepClock } from './progress.js';
import { RunFiles, type RunState } from './runfiles.js';

/**
 * Staging rows in the metrics ring: a step's row is taken RING_ROWS - 1 steps later, so the CPU
 * records at most that many steps ahead of the GPU (enough to keep it busy: recording a step
 * takes a fraction of running it).
 */
export const RING_ROWS = 3;

export class DivergedError extends Error {
  override name = 'DivergedError';
}

export type LoopStatus = 'finished' | 'interrupted' | 'diverged';

export interface SessionOptions {
  /** Continue the run folder from its latest checkpoint. */
  resume?: boolean;
  /** Replace an existing run (new runs only). */
  overwrite?: boolean;
  progress?: ProgressMode;
  /** Aborting finishes the current step, saves a checkpoint and returns 'interrupted'. */
  signal?: AbortSignal;
  /** Messages (default: printed above the progress bar). */
  print?: (line: string) => void;
  /** Called after each step is submitted (bench/train_loop.ts times the loop with it). */
  onStep?: (step: number) => void;
}

/** How a trainer's folder is claimed for a new run. */
export interface FolderRules {
  /** What must be empty (else --overwrite empties it): the whole folder, or its checkpoints only. */
  fresh: 'folder' | 'checkpoints';
  /** The error for a new run over an existing one. */
  exists: string;
  /** The error for --resume where there is no run (null: resuming an empty folder starts one). */
  noRun: string | null;
}

/** A run's folder, messages and progress output. */
export class RunSession {
  readonly files: RunFiles;
  readonly progress: Progress;

  constructor(
    dir: string,
    readonly opts: SessionOptions,
  ) {
    this.files = new RunFiles(dir);
    this.progress = new Progress(opts.progress ?? 'auto');
  }

  /** A message: into log.txt, and printed (above the bar). */
  say(line: string): void {
    this.files.appendLog(line);
    if (this.opts.print) this.opts.print(line);
    else this.progress.message(line);
  }

  /**
   * Claims the folder (see FolderRules) and returns the checkpoint to resume from: the latest,
   * or null for a new run (and for --resume before any checkpoint, which says so).
   */
  claim(rules: FolderRules): { base: string; step: number } | null {
    const f = this.files;
    if (this.opts.resume) {
      if (rules.noRun && !existsSync(f.config)) throw new Error(rules.noRun);
      mkdirSync(f.checkpointDir, { recursive: true });
      return f.latest();
    }
    const guarded = rules.fresh === 'folder' ? f.dir : f.checkpointDir;
    if (existsSync(guarded) && readdirSync(guarded).length > 0) {
      if (!this.opts.overwrite) throw new Error(rules.exists);
      rmSync(guarded, { recursive: true, force: true });
    }
    mkdirSync(f.checkpointDir, { recursive: true });
    return null;
  }

  /** Ends the run's status with `state` (a message for anything but 'finished'). */
  end(state: RunState, step: number, steps: number, message: string | undefined, checkpoint: string | null): void {
    this.progress.close();
    this.files.writeStatus({ state, step, steps, ...(message !== undefined ? { message } : {}), checkpoint });
  }

  /** Records a failure (status 'failed', the stack in log.txt); the caller rethrows. */
  fail(e: unknown, step: number, steps: number, checkpoint: string | null): void {
    this.end('failed', step, steps, (e as Error).message, checkpoint);
    this.files.appendLog(`failed: ${(e as Error).stack ?? e}`);
  }
}

/** The cadences of a run (steps count from 1; "every N": the steps that are multiples of N). */
export interface Cadence {
  steps: number;
  logEvery: number;
  valEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
}

/** What the loop carries across resumes (each trainer stores it in its checkpoints' state). */
export interface LoopState {
  bestValLoss: number | null;
  bestStep: number | null;
  /** Training seconds before this session. */
  elapsed: number;
}

/** A closed logging interval, for LoopTask.trainRow. */
export interface Interval {
  /** Its closing step. */
  step: number;
  /** The per-step rows (LoopTask.fields by name), oldest first. */
  rows: Record<string, number>[];
  /** The learning rate of the closing step. */
  lr: number;
  stepsPerSecond: number;
  elapsed: number;
}

/** What the progress line shows of a train row. */
export type Shown = Pick<ProgressState, 'loss' | 'recon' | 'perplexity' | 'usage' | 'codebookSize'>;

/** The trainer's part of the loop. */
export interface LoopTask<R extends RowBase> {
  /** Names of the scalars each step writes into its ring row. */
  readonly fields: readonly string[];
  /** Columns of metrics.jsonl / .csv. */
  readonly columns: readonly (keyof R)[];
  /** Images (or maps) per step, for the rate shown. */
  readonly batchSize: number;
  /** Whether the run validates (a validation step then closes a logging interval). */
  readonly validates: boolean;
  /**
   * Records step `step` (1-based) on the GPU; `write` records the copies of its row's scalars
   * (one-element f32 tensors, null for a field left unwritten) and must be called once.
   * `closing`: the step ends a logging interval (interval totals such as codebook usage go in
   * its row).
   */
  step(step: number, write: (values: readonly (Tensor | null)[]) => void, closing: boolean): Promise<void>;
  /** The learning rate the last step used. */
  lr(): number;
  /** Why a step's row shows divergence (a non-finite loss), or null. */
  problem(row: Record<string, number>, step: number): string | null;
  /** The train row of a closed interval, and what the progress line shows of it. */
  trainRow(i: Interval): Promise<{ row: R; shown: Shown }>;
  /** Validation at `step`: its row, its loss (lower is better), and its message given a note. */
  validate(step: number, elapsed: number): Promise<{ row: R; loss: number; message: (note: string) => string }>;
  /** Work of its own cadence after a step's validation and before its checkpoint (grids). */
  afterStep?(step: number): Promise<void>;
  /** Saves the model as the best so far. */
  saveBest(step: number): Promise<void>;
  /** Saves a resumable checkpoint (model, optimiser, the task's state and `loop`) at `base`. */
  saveCheckpoint(base: string, step: number, loop: LoopState): Promise<void>;
  /** The tensors a checkpoint holds (checked to be finite before one is written). */
  weights(): Iterable<Tensor>;
  writePlots(rows: readonly R[]): void;
  /** The message of an interrupted run. */
  interrupted(step: number): string;
  /** How to continue a diverged run from its last checkpoint at `lr`. */
  resumeHint(lr: number): string;
  /** The learning rate the run was started with (the divergence message halves it). */
  readonly baseLr: number;
}

export interface LoopStart {
  step: number;
  state: LoopState;
  /** The checkpoint the run resumed from, if any. */
  checkpoint: string | null;
}

export interface LoopOutcome {
  status: LoopStatus;
  step: number;
  message: string;
  checkpoint: string | null;
  state: LoopState;
}

/** Seconds between loss curve redraws while training. */
const PLOT_EVERY_MS = 20_000;

/** The step loop of one session; run() once. */
export class TrainLoop<R extends RowBase> {
  step: number;
  readonly state: LoopState;
  checkpoint: string | null;
  readonly metrics: MetricsLog<R>;
  private readonly ring: MetricsRing;
  private readonly clock: StepClock;
  private readonly sessionStart = performance.now();
  /** Learning rate of each step whose row is pending. */
  private readonly lrs = new Map<number, number>();
  private interval: Record<string, number>[] = [];
  private intervalStart = performance.now();
  private intervalSteps = 0;
  private shown: Shown | null = null;
  private lastPlot = 0;

  constructor(
    readonly session: RunSession,
    readonly task: LoopTask<R>,
    readonly cadence: Cadence,
    start: LoopStart,
    runtime: Runtime,
  ) {
    this.step = start.step;
    this.state = { ...start.state };
    this.checkpoint = start.checkpoint;
    const f = session.files;
    this.metrics = new MetricsLog<R>(f.metricsJsonl, f.metricsCsv, task.columns);
    this.metrics.start(start.checkpoint ? start.step : null);
    this.ring = new MetricsRing(task.fields.length, RING_ROWS);
    this.clock = new StepClock(runtime, (line) => session.progress.message(line)); // ETAs from warm steps only
  }

  /** Training seconds so far, this session and the ones before. */
  elapsed(): number {
    return this.state.elapsed + (performance.now() - this.sessionStart) / 1000;
  }

  /** Runs the steps up to cadence.steps (or an abort, or a divergence); writes the status unless finished. */
  async run(): Promise<LoopOutcome> {
    const c = this.cadence;
    const signal = this.session.opts.signal;
    let status: LoopStatus = 'finished';
    let message = '';
    try {
      while (this.step < c.steps) {
        if (signal?.aborted) {
          status = 'interrupted';
          break;
        }
        await this.recordStep();
        await this.cadenceWork();
      }
      if (status === 'interrupted') {
        await this.saveLatest();
        message = this.task.interrupted(this.step);
      }
    } catch (e) {
      if (!(e instanceof DivergedError)) throw e;
      status = 'diverged';
      message = this.divergedMessage(e);
    } finally {
      this.clock.close();
      this.ring.dispose();
    }
    this.session.progress.close();
    this.plots();
    if (status !== 'finished') {
      this.session.say(message);
      this.session.end(status, this.step, c.steps, message, this.checkpoint);
    }
    return { status, step: this.step, message, checkpoint: this.checkpoint, state: { ...this.state, elapsed: this.elapsed() } };
  }

  /** Whether `step` ends a logging interval: a log, validation or checkpoint step, or the last. */
  private closes(step: number): boolean {
    const c = this.cadence;
    return step % c.logEvery === 0 || (this.task.validates && step % c.valEvery === 0) || step % c.checkpointEvery === 0 || step === c.steps;
  }

  /** Records the next step, first taking the oldest row if the ring is full (the loop's one wait on the GPU between steps). */
  private async recordStep(): Promise<void> {
    while (this.ring.full) await this.take(await this.ring.take());
    const next = this.step + 1;
    const pending = this.ring.pending;
    this.clock.beforeStep();
    await this.task.step(next, (values) => this.ring.write(next, values), this.closes(next));
    if (this.ring.pending !== pending + 1) throw new Error(`step ${next} wrote ${this.ring.pending - pending} metrics rows, not 1`);
    this.lrs.set(next, this.task.lr());
    this.ring.commit(); // submits the step and maps its row
    this.step = next;
    this.intervalSteps++;
    this.clock.afterStep();
    this.session.opts.onStep?.(next);
    // During a cold start each row is taken right after its step: the GPU is compiling kernels
    // anyway, and the progress lines then say so as it happens.
    if (this.clock.compiling !== undefined) for (const r of await this.ring.drain()) await this.take(r);
    const p = this.shown;
    this.session.progress.update({ step: next, total: this.cadence.steps, elapsed: this.elapsed(), rate: this.clock.rate, compiling: this.clock.compiling, loss: p?.loss, perplexity: p?.perplexity });
  }

  /** Validation, the task's own work and the checkpoint, each at its cadence. */
  private async cadenceWork(): Promise<void> {
    const c = this.cadence;
    const last = this.step === c.steps;
    if (this.task.validates && (this.step % c.valEvery === 0 || last)) await this.validate();
    await this.task.afterStep?.(this.step);
    if (this.step % c.checkpointEvery === 0 || last) await this.saveLatest();
  }

  /** Checks one taken row and adds it to the interval; writes the train row at a closing step. */
  private async take(r: RingRow): Promise<void> {
    const row: Record<string, number> = {};
    this.task.fields.forEach((name, k) => (row[name] = r.values[k]));
    const problem = this.task.problem(row, r.tag);
    if (problem) throw new DivergedError(problem);
    this.interval.push(row);
    if (this.closes(r.tag)) await this.closeInterval(r.tag);
  }

  /** Takes every pending row and closes the interval at the current step (waits for the GPU). */
  private async drain(): Promise<void> {
    for (const r of await this.ring.drain()) await this.take(r);
    if (this.interval.length > 0) await this.closeInterval(this.step);
  }

  private async closeInterval(step: number): Promise<void> {
    const seconds = (performance.now() - this.intervalStart) / 1000;
    const stepsPerSecond = this.intervalSteps / Math.max(seconds, 1e-9);
    this.intervalStart = performance.now();
    this.intervalSteps = 0;
    const rows = this.interval;
    this.interval = [];
    const lr = this.lrs.get(step)!;
    for (const s of this.lrs.keys()) if (s <= step) this.lrs.delete(s);
    const { row, shown } = await this.task.trainRow({ step, rows, lr, stepsPerSecond, elapsed: this.elapsed() });
    this.metrics.append(row);
    this.shown = shown;
    const rate = this.clock.rate;
    this.session.progress.log({ ...shown, step, total: this.cadence.steps, elapsed: this.elapsed(), rate, compiling: this.clock.compiling, imagesPerSecond: stepsPerSecond * this.task.batchSize });
    if (performance.now() - this.lastPlot > PLOT_EVERY_MS) this.plots();
  }

  /** A validation now (the prior's, after a session that ran no validation step). */
  async validateNow(): Promise<void> {
    await this.validate();
  }

  private async validate(): Promise<void> {
    await this.drain();
    const v = await this.task.validate(this.step, this.elapsed());
    if (!Number.isFinite(v.loss)) throw new DivergedError(`the validation loss became ${v.loss} at step ${this.step}`);
    this.metrics.append(v.row);
    let note = '';
    if (this.state.bestValLoss === null || v.loss < this.state.bestValLoss) {
      this.state.bestValLoss = v.loss;
      this.state.bestStep = this.step;
      await this.task.saveBest(this.step);
      note = ' (best so far; saved)';
    }
    this.session.say(v.message(note));
    this.plots();
  }

  private async weightsFinite(): Promise<boolean> {
    for (const t of this.task.weights()) {
      const v = (await t.read()) as Float32Array;
      for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
    }
    return true;
  }

  /** A resumable checkpoint of the current step, once every step before it was checked. */
  private async saveLatest(): Promise<void> {
    await this.drain(); // throws on a non-finite loss: nothing unchecked is saved
    const f = this.session.files;
    const base = f.stepBase(this.step);
    if (this.checkpoint === base && existsSync(modelPath(base))) return;
    if (!(await this.weightsFinite())) throw new DivergedError(`the weights hold non-finite values after step ${this.step}`);
    await this.task.saveCheckpoint(base, this.step, { ...this.state, elapsed: this.elapsed() });
    f.commitCheckpoint(this.step, this.cadence.keepCheckpoints);
    this.checkpoint = base;
  }

  private divergedMessage(e: Error): string {
    const last = this.checkpoint;
    const lr = this.task.baseLr;
    return (
      `stopped: ${e.message}. ` +
      (last ? `The last good checkpoint is ${last} (step ${this.session.files.latest()?.step ?? '?'}); ` : 'No checkpoint was saved before it; ') +
      (last ? `continue from it with a lower rate: ${this.task.resumeHint(lr / 2)}` : `try a lower --lr than ${lr}`) +
      '.'
    );
  }

  plots(): void {
    this.lastPlot = performance.now();
    this.task.writePlots(this.metrics.rows);
  }
}
