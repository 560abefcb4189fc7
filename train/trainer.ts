// The VQ-VAE trainer: data, model, Adam, the run folder's config, reconstruction grids, curves
// and the final evaluation, over the run loop both trainers share (train/loop.ts: resume,
// abort, the divergence stop, metric rows, progress, validation and checkpoints; see
// runfiles.ts for the folder).
//
// Trust:
// - Exact resume: a checkpoint holds the weights, Adam's moments and step counts, the EMA
//   codebook state, and (as JSON) the loader's state; the losses of N steps + resume + N steps
//   equal those of 2N steps bit for bit.
// - No stalls between steps (loop.ts): losses come back through the metrics ring, a step or
//   more late. Batches go up as uint8 and are widened on the GPU (engine/upload.ts) through a
//   table computed by the CPU's own conversion, so the step sees exactly the CPU's floats.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { noGrad } from '../engine/autograd.js';
import { autotunePending, pendingTunings } from '../engine/autotune.js';
import { flags } from '../engine/flags.js';
import { LossScaler, type LossScaleState } from '../engine/loss_scale.js';
import { Adam } from '../engine/optim.js';
import { init } from '../engine/node.js';
import { StepRecordings } from '../engine/recording.js';
import { type Runtime } from '../engine/runtime.js';
import { type Tensor, full, keep, tensor, tidy } from '../engine/tensor.js';
import { ByteInput } from '../engine/upload.js';
import { CodeUsage } from '../engine/vq.js';
import { initFromCheckpoint, loadCheckpoint, saveCheckpoint, trainPath } from '../model/checkpoint_files.js';
import { countParams } from '../model/params.js';
import type { VqVaeConfig } from '../model/config.js';
import { VqVae } from '../model/vqvae.js';
import { type GivenConfig, type TrainConfig, RESUMABLE_KEYS, formatLr, kebab, modelConfig, readRunConfig, resolvePrecision, validateTrainConfig } from './config.js';
import { type DataConfig, type Dataset, DataLoader, IMAGE_SIZE, type LoaderState, getImages, openDataset } from './data/index.js';
import { type EvalResult, evaluate, limitSplit, writeReconGrid } from './evaluate.js';
import { type Interval, type LoopStart, type LoopState, type LoopTask, RunSession, type SessionOptions, type Shown, TrainLoop } from './loop.js';
import { METRIC_COLUMNS, type MetricRow, psnr } from './metrics.js';
import { type ChartSpec, writeCharts } from './plot.js';
import { fmt, formatDuration } from './progress.js';
import { RunFiles, readJson, writeJsonAtomic } from './runfiles.js';
import { type StepPrecision, imageByteTable, lrAt, stepGradients, stepOptimizer } from './step.js';

export { DivergedError } from './loop.js';

export interface TrainOptions extends SessionOptions {
  /** Extra facts recorded in config.json (e.g. the command line). */
  meta?: Record<string, unknown>;
  /** Testing aid: feed NaN images at this step (1-based) to exercise the divergence stop. */
  injectNanAtStep?: number;
}

export interface TrainResult {
  status: 'finished' | 'interrupted' | 'diverged';
  step: number;
  runDir: string;
  /** The final evaluation (finished runs). */
  eval: EvalResult | null;
  /** The latest checkpoint's base path, if any. */
  checkpoint: string | null;
  message: string;
}

const STEP_FIELDS = ['loss', 'recon', 'codebook', 'commitment', 'perplexity'] as const;
/** A step's ring row: its losses, and at a closing step the codes used over the interval. */
const ROW_FIELDS = [...STEP_FIELDS, 'used'] as const;
/** The data options of a train config. */
export function dataConfig(c: TrainConfig, signal?: AbortSignal, progress: DataConfig['progress'] = 'auto'): DataConfig {
  const subset: DataConfig['subset'] = {};
  if (c.trainSubset) subset.train = c.trainSubset;
  if (c.validSubset) subset.valid = c.validSubset;
  if (c.testSubset) subset.test = c.testSubset;
  return {
    source: c.data ? c.source : 'synthetic',
    path: c.data ?? undefined,
    preprocess: { mode: c.preprocess, filter: c.filter },
    cacheDir: c.cacheDir ?? undefined,
    subset: Object.keys(subset).length ? subset : undefined,
    subsetSeed: c.seed,
    synthetic: { seed: 0 },
    signal,
    progress,
  };
}

export { lrAt } from './step.js';

/** Trainer state stored as JSON in each checkpoint. */
interface TrainState {
  version: 1;
  loader: LoaderState;
  bestValLoss: number | null;
  bestStep: number | null;
  elapsed: number;
  /** The loss scaler's state (f16 runs). */
  lossScale?: LossScaleState;
}

/** Reads a run folder's config and applies the options that may change on resume. */
export function resumeConfig(runDir: string, overrides: GivenConfig = {}): TrainConfig {
  const files = new RunFiles(runDir);
  if (!existsSync(files.config)) throw new Error(`--resume ${runDir}: no config.json there (not a run folder?)`);
  const saved = readRunConfig(files.config);
  const config: TrainConfig = { ...saved, runsDir: dirname(runDir), name: basename(runDir) };
  const refused: string[] = [];
  for (const [k, v] of Object.entries(overrides) as [keyof TrainConfig, unknown][]) {
    if (v === undefined || k === 'name' || k === 'runsDir' || (k === 'preset' && v === 'auto')) continue;
    if ((RESUMABLE_KEYS as string[]).includes(k)) (config as unknown as Record<string, unknown>)[k] = v;
    else if (v !== (saved as unknown as Record<string, unknown>)[k]) refused.push(`--${kebab(k)} (run: ${JSON.stringify(saved[k])}, given: ${JSON.stringify(v)})`);
  }
  if (refused.length) {
    throw new Error(`--resume ${runDir}: these options cannot change in a resumed run: ${refused.join(', ')}. Only ${RESUMABLE_KEYS.map((k) => '--' + kebab(k)).join(', ')} may.`);
  }
  validateTrainConfig(config);
  return config;
}


/** What a VQ-VAE run is made of (made once per session, disposed at its end). */
interface VqParts {
  cfg: TrainConfig;
  mcfg: VqVaeConfig;
  ds: Dataset;
  model: VqVae;
  opt: Adam;
  /** Training batches as uint8 (widened on the GPU). */
  loader: DataLoader<Uint8Array>;
  valLoader: DataLoader | null;
  usage: CodeUsage;
  input: ByteInput;
  how: StepPrecision;
  /** The step recorded once per batch size and replayed (flag replayStep). */
  recordings: StepRecordings<StepOutputs>;
}

/** What a step leaves for the metrics ring and the code usage. */
interface StepOutputs {
  loss: Tensor;
  recon: Tensor;
  codebook: Tensor;
  commitment: Tensor;
  perplexity: Tensor;
  counts: Tensor;
}

function makeParts(cfg: TrainConfig, ds: Dataset, r: Runtime): VqParts {
  const mcfg = modelConfig(cfg);
  const model = new VqVae(mcfg, { seed: cfg.seed });
  const opt = new Adam(model.parameters(), { lr: cfg.lr });
  const loader = new DataLoader<Uint8Array>(ds, { batchSize: cfg.batchSize, seed: cfg.seed, sampling: cfg.sampling, format: 'uint8' });
  const valLoader = ds.splits.valid.length > 0 ? new DataLoader(limitSplit(ds, 'valid', cfg.valImages), { batchSize: cfg.batchSize }) : null;
  const usage = new CodeUsage(mcfg.codebookSize);
  const input = new ByteInput(cfg.batchSize * 3 * IMAGE_SIZE * IMAGE_SIZE, imageByteTable());
  const precision = resolvePrecision(cfg.precision, r.caps);
  const how: StepPrecision = { precision, scaler: precision === 'f16' ? new LossScaler() : null };
  return { cfg, mcfg, ds, model, opt, loader, valLoader, usage, input, how, recordings: new StepRecordings() };
}

async function disposeParts(p: VqParts): Promise<void> {
  p.recordings.dispose();
  p.how.scaler?.dispose();
  p.input.dispose();
  p.usage.dispose();
  p.opt.dispose();
  p.model.dispose();
  await p.loader.close();
  await p.valLoader?.close();
}

const FRESH: LoopState = { bestValLoss: null, bestStep: null, elapsed: 0 };

/** Where the run starts: the resumed checkpoint's step and state, or step 0 (from --init-from's weights if given). */
async function startFrom(p: VqParts, session: RunSession, resumeFrom: { base: string } | null): Promise<LoopStart> {
  const { cfg, model, opt } = p;
  if (resumeFrom) {
    const info = await loadCheckpoint(resumeFrom.base, model, { optimizer: opt });
    const st = info.train as unknown as TrainState | null;
    if (!st || st.version !== 1 || !st.loader) throw new Error(`${trainPath(resumeFrom.base)}: no trainer state; cannot resume exactly`);
    p.loader.setState(st.loader);
    if (st.lossScale && p.how.scaler) p.how.scaler.loadState(st.lossScale);
    if (opt.lr !== lrAt(cfg, info.step - 1)) session.say(`learning rate ${opt.lr} -> ${lrAt(cfg, info.step)} (--lr or --steps changed on resume)`);
    session.files.dropCheckpointsAfter(info.step);
    return { step: info.step, state: { bestValLoss: st.bestValLoss, bestStep: st.bestStep, elapsed: st.elapsed }, checkpoint: resumeFrom.base };
  }
  if (session.opts.resume) session.say(`${session.files.dir}: no checkpoint yet; starting from step 0`);
  if (cfg.initFrom) {
    const notes: string[] = [];
    const info = await initFromCheckpoint(cfg.initFrom, model, { onWarning: (m) => notes.push(m) });
    for (const n of notes) session.say(n);
    session.say(`initial weights from ${cfg.initFrom} (${info.format === 'pt' ? 'torch.save file' : 'safetensors'}, ${info.names} names${info.key ? `, key '${info.key}'` : ''}); step 0, fresh Adam`);
  }
  return { step: 0, state: { ...FRESH }, checkpoint: null };
}

/** config.json (what the run ran on and with) and the header lines of the log. */
function writeHeader(p: VqParts, session: RunSession, r: Runtime, start: LoopStart, meta: Record<string, unknown> | undefined): void {
  const { cfg, mcfg, ds } = p;
  const files = session.files;
  const prevConfig = readJson<Record<string, unknown>>(files.config);
  writeJsonAtomic(files.config, {
    ...cfg,
    version: 1,
    created: (prevConfig?.created as string | undefined) ?? new Date().toISOString(),
    adapter: r.caps.description,
    isCpu: r.caps.isCpu,
    dataset: ds.description,
    parameters: countParams(mcfg),
    ...(meta ?? {}),
  });
  const runDir = files.dir;
  const header = start.checkpoint ? `resuming ${runDir} at step ${start.step}/${cfg.steps}` : `run ${runDir}`;
  session.say(`${header} | ${r.caps.description} (${r.caps.isCpu ? 'CPU' : 'GPU'} device)`);
  session.say(`data: ${ds.description}`);
  session.say(
    `model: hidden ${mcfg.hidden}, residual ${mcfg.residualHidden}x${mcfg.residualBlocks}, K ${mcfg.codebookSize}, D ${mcfg.embeddingDim}, ` +
      `beta ${mcfg.beta}${mcfg.ema ? `, EMA codebook (decay ${mcfg.emaDecay})` : ''}; ${countParams(mcfg).toLocaleString('en-US')} parameters`,
  );
  const valImages = p.valLoader ? p.valLoader.dataset.splits.valid.length : 0;
  session.say(`training: ${cfg.steps} steps, batch ${cfg.batchSize}, Adam lr ${cfg.lr}${cfg.lrSchedule === 'cosine' ? ' (cosine decay)' : ''}, ${p.how.precision}${p.how.scaler ? ' with loss scaling' : ''}, seed ${cfg.seed}; log every ${cfg.logEvery}, validate every ${cfg.valEvery} on ${valImages} images`);
}

/** The VQ-VAE's part of the run loop. */
class VqVaeTask implements LoopTask<MetricRow> {
  readonly fields = ROW_FIELDS;
  readonly columns = METRIC_COLUMNS;
  readonly batchSize: number;
  readonly validates: boolean;
  readonly baseLr: number;
  /** Fixed images for the reconstruction grids. */
  private readonly gridImages: Float32Array;

  constructor(
    private readonly p: VqParts,
    private readonly files: RunFiles,
    private readonly injectNanAtStep: number | undefined,
  ) {
    this.batchSize = p.cfg.batchSize;
    this.validates = p.valLoader !== null;
    this.baseLr = p.cfg.lr;
    const gridSplit = p.valLoader ? 'valid' : 'train';
    this.gridImages = getImages(p.ds, gridSplit, Math.min(16, p.ds.splits[gridSplit].length));
  }

  async step(step: number, write: (values: readonly (Tensor | null)[]) => void, closing: boolean): Promise<void> {
    const { cfg, opt, usage, input, recordings } = this.p;
    if (pendingTunings().length) {
      // New shapes ran with the rule-based plans; time their candidates, then record with the choices.
      await autotunePending();
      recordings.dispose();
    }
    opt.lr = lrAt(cfg, step - 1);
    // The next batch goes up while the steps before it run (the ring lets the CPU run ahead).
    input.write(await this.p.loader.next());
    const nan = this.injectNanAtStep === step;
    // A recorded step re-runs its commands with no op code; the NaN test step runs op by op.
    const eager = nan || !flags().replayStep;
    const out = eager ? this.gpuStep(nan) : recordings.run(`b${cfg.batchSize}`, () => this.gpuStep(false)).result;
    tidy(() => {
      usage.update(out.counts);
      write([out.loss, out.recon, out.codebook, out.commitment, out.perplexity, closing ? usage.used() : null]);
      if (closing) usage.reset();
    });
    if (eager) for (const t of Object.values(out)) t.dispose();
  }

  /** The step's GPU work from the uploaded batch: forward, backward, the optimiser's update. */
  private gpuStep(nan: boolean): StepOutputs {
    const { cfg, model, opt, input, how } = this.p;
    const shape = [cfg.batchSize, 3, IMAGE_SIZE, IMAGE_SIZE];
    let out: StepOutputs | null = null;
    tidy(() => {
      const x = nan ? full(shape, NaN) : input.widen(shape);
      stepGradients(model, x, cfg.batchSize, (o) => {
        out = { loss: keep(o.loss), recon: keep(o.recon), codebook: keep(o.codebookLoss), commitment: keep(o.commitmentLoss), perplexity: keep(o.perplexity), counts: keep(o.counts) };
      }, how);
    });
    stepOptimizer(opt, how.scaler);
    return out!;
  }

  lr(): number {
    return this.p.opt.lr;
  }

  problem(row: Record<string, number>, step: number): string | null {
    if (STEP_FIELDS.every((f) => Number.isFinite(row[f]))) return null;
    return `the loss became ${row.loss} at step ${step} (reconstruction ${row.recon}, codebook ${row.codebook}, commitment ${row.commitment})`;
  }

  /** Codes used since the last closing step, read now (an interval closed by an abort). */
  private async usedNow(): Promise<number> {
    const t = this.p.usage.used();
    const used = await t.item();
    t.dispose();
    this.p.usage.reset();
    return used;
  }

  async trainRow(i: Interval): Promise<{ row: MetricRow; shown: Shown }> {
    const rows = i.rows;
    const n = rows.length;
    const mean = (f: (typeof STEP_FIELDS)[number]) => rows.reduce((s, row) => s + row[f], 0) / n;
    const last = rows[n - 1].used;
    const used = Number.isNaN(last) ? await this.usedNow() : last;
    const recon = mean('recon');
    const row: MetricRow = {
      step: i.step,
      split: 'train',
      loss: mean('loss'),
      recon_mse: recon,
      codebook_loss: mean('codebook'),
      commitment_loss: mean('commitment'),
      perplexity: mean('perplexity'),
      codebook_usage: used,
      psnr: psnr(recon),
      lr: i.lr,
      images_per_s: i.stepsPerSecond * this.batchSize,
      elapsed_s: i.elapsed,
    };
    return { row, shown: { loss: row.loss, recon, perplexity: row.perplexity, usage: used, codebookSize: this.p.mcfg.codebookSize } };
  }

  async validate(step: number, elapsed: number): Promise<{ row: MetricRow; loss: number; message: (note: string) => string }> {
    const v = await evaluate(this.p.model, this.p.valLoader!, 'valid', { batchSize: this.batchSize });
    const row: MetricRow = {
      step,
      split: 'valid',
      loss: v.loss,
      recon_mse: v.recon_mse,
      codebook_loss: v.codebook_loss,
      commitment_loss: v.commitment_loss,
      perplexity: v.batch_perplexity,
      codebook_usage: v.codebook_usage,
      psnr: v.psnr,
      lr: null,
      images_per_s: null,
      elapsed_s: elapsed,
    };
    const message = (note: string) =>
      `validation at step ${step}: loss ${fmt(v.loss)}, recon MSE ${fmt(v.recon_mse)}, PSNR ${v.psnr.toFixed(2)} dB, ` +
      `perplexity ${v.batch_perplexity.toFixed(1)}, ${v.codebook_usage}/${this.p.mcfg.codebookSize} codes used${note}`;
    return { row, loss: v.loss, message };
  }

  async afterStep(step: number): Promise<void> {
    if (step % this.p.cfg.gridEvery === 0) await this.grid(this.files.reconPath(step));
  }

  /** The grid images over their reconstructions, at `path`. */
  async grid(path: string): Promise<void> {
    const n = this.gridImages.length / (3 * IMAGE_SIZE * IMAGE_SIZE);
    const xHat = tidy(() => noGrad(() => this.p.model.forward(tensor(this.gridImages, [n, 3, IMAGE_SIZE, IMAGE_SIZE]), { train: false }).xHat));
    const recon = (await xHat.read()) as Float32Array;
    xHat.dispose();
    writeReconGrid(path, this.gridImages, recon, n);
  }

  async saveBest(step: number): Promise<void> {
    await saveCheckpoint(this.files.best, this.p.model, { step, names: this.p.cfg.names });
  }

  async saveCheckpoint(base: string, step: number, loop: LoopState): Promise<void> {
    const lossScale = this.p.how.scaler ? await this.p.how.scaler.read() : undefined;
    const state: TrainState = { version: 1, loader: this.p.loader.getState(), bestValLoss: loop.bestValLoss, bestStep: loop.bestStep, elapsed: loop.elapsed, lossScale };
    await saveCheckpoint(base, this.p.model, { step, optimizer: this.p.opt, train: state as unknown as Record<string, unknown>, names: this.p.cfg.names });
  }

  weights(): Iterable<Tensor> {
    return this.p.model.state.values();
  }

  writePlots(rows: readonly MetricRow[]): void {
    writePlots(this.files, rows, this.p.cfg);
  }

  interrupted(step: number): string {
    return `interrupted at step ${step}/${this.p.cfg.steps}; checkpoint saved: resume with --resume ${this.files.dir}`;
  }

  resumeHint(lr: number): string {
    return `--resume ${this.files.dir} --lr ${lr}`;
  }
}

/** Trains according to `cfg`; see TrainOptions. */
export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  validateTrainConfig(cfg);
  const r = await init();
  const runDir = join(cfg.runsDir, cfg.name);
  const session = new RunSession(runDir, opts);
  const resumeFrom = session.claim({
    fresh: 'folder',
    exists: `${runDir} already exists: resume it with --resume ${runDir}, choose another --name, or pass --overwrite`,
    noRun: `cannot resume ${runDir}: no config.json there`,
  });
  session.files.make();
  const ds = await openDataset(dataConfig(cfg, opts.signal, opts.progress === 'none' ? 'none' : 'auto'));
  if (ds.splits.train.length === 0) throw new Error(`${ds.description}: the train split is empty`);
  const p = makeParts(cfg, ds, r);
  let start: LoopStart = { step: 0, state: { ...FRESH }, checkpoint: null };
  let loop: TrainLoop<MetricRow> | null = null;
  try {
    start = await startFrom(p, session, resumeFrom);
    writeHeader(p, session, r, start, opts.meta);
    // A run stopped during its final evaluation has all its steps but no eval.json: it goes on
    // past the (empty) loop to the evaluation.
    if (start.step >= cfg.steps && existsSync(session.files.evalJson)) {
      const message = `${runDir} is already complete at step ${start.step} (raise --steps to train further)`;
      session.say(message);
      session.end('finished', start.step, cfg.steps, undefined, start.checkpoint);
      return { status: 'finished', step: start.step, runDir, eval: readJson<EvalResult>(session.files.evalJson), checkpoint: start.checkpoint, message };
    }
    session.files.writeStatus({ state: 'running', step: start.step, steps: cfg.steps, checkpoint: start.checkpoint });
    const task = new VqVaeTask(p, session.files, opts.injectNanAtStep);
    loop = new TrainLoop(session, task, cfg, start, r);
    const out = await loop.run();
    if (out.status !== 'finished') return { status: out.status, step: out.step, runDir, eval: null, checkpoint: out.checkpoint, message: out.message };
    return await finalEvaluation(p, session, task, loop);
  } catch (e) {
    session.fail(e, loop?.step ?? start.step, cfg.steps, loop?.checkpoint ?? start.checkpoint);
    throw e;
  } finally {
    await disposeParts(p);
  }
}

/** The final grid and evaluation of a finished run (eval.json), and its status. */
async function finalEvaluation(p: VqParts, session: RunSession, task: VqVaeTask, loop: TrainLoop<MetricRow>): Promise<TrainResult> {
  const { cfg, ds } = p;
  const { step, checkpoint } = loop;
  const runDir = session.files.dir;
  await task.grid(session.files.reconPath('final'));
  const evalN = cfg.evalImages > 0 ? Math.min(cfg.evalImages, ds.splits[cfg.evalSplit].length) : ds.splits[cfg.evalSplit].length;
  let result: EvalResult | null = null;
  if (evalN > 0) {
    session.say(`final evaluation on ${evalN} ${cfg.evalSplit} images ...`);
    try {
      result = await evaluate(p.model, ds, cfg.evalSplit, { batchSize: cfg.batchSize, limit: cfg.evalImages || undefined, signal: session.opts.signal });
    } catch (e) {
      if (!session.opts.signal?.aborted) throw e;
      const message = `interrupted during the final evaluation; training finished at step ${step} (checkpoint ${checkpoint}); evaluate with npm run eval -- ${runDir}`;
      session.say(message);
      session.end('interrupted', step, cfg.steps, message, checkpoint);
      return { status: 'interrupted', step, runDir, eval: null, checkpoint, message };
    }
    const st = loop.state;
    writeJsonAtomic(session.files.evalJson, { run: cfg.name, checkpoint: 'final', step, ...result, best_valid_loss: st.bestValLoss, best_step: st.bestStep, train_seconds: loop.elapsed() });
    session.say(formatEval(result, `final model, step ${step}`));
  }
  const message = `finished ${cfg.steps} steps in ${formatDuration(loop.elapsed())}; run folder ${runDir}`;
  session.say(message);
  session.end('finished', step, cfg.steps, undefined, checkpoint);
  return { status: 'finished', step, runDir, eval: result, checkpoint, message };
}

/** A printed table of an evaluation. */
export function formatEval(e: EvalResult, what: string): string {
  const rows: [string, string][] = [
    ['split', `${e.split} (${e.images} images)`],
    ['reconstruction MSE', fmt(e.recon_mse, 5)],
    ['PSNR', `${e.psnr.toFixed(2)} dB`],
    ['loss', fmt(e.loss, 5)],
    ['codebook loss', fmt(e.codebook_loss, 5)],
    ['commitment loss', fmt(e.commitment_loss, 5)],
    ['perplexity (whole split)', e.perplexity.toFixed(1)],
    [`perplexity (batches of ${e.batch_size})`, e.batch_perplexity.toFixed(1)],
    ['codebook usage', `${e.codebook_usage}/${e.codebook_size} (${(100 * e.codebook_usage_fraction).toFixed(1)}%)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`evaluation of the ${what}:`, ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`)].join('\n');
}

/** loss.png and perplexity.png of a run from its metric rows. */
export function writePlots(files: RunFiles, rows: readonly MetricRow[], cfg: TrainConfig): void {
  const train = rows.filter((r) => r.split === 'train');
  const valid = rows.filter((r) => r.split === 'valid');
  const sub = `K=${cfg.codebookSize}, beta=${cfg.beta}, lr=${formatLr(cfg.lr)}${cfg.ema ? ', EMA' : ''}`;
  const col = (rs: readonly MetricRow[], k: keyof MetricRow) => rs.map((r) => r[k] as number);
  const loss: ChartSpec = {
    title: `Loss: ${cfg.name} (${sub})`,
    xLabel: 'step',
    yLabel: 'loss (log scale)',
    logY: true,
    series: [
      { label: 'train loss', x: col(train, 'step'), y: col(train, 'loss') },
      { label: 'train recon MSE', x: col(train, 'step'), y: col(train, 'recon_mse') },
      ...(valid.length ? [{ label: 'valid loss', x: col(valid, 'step'), y: col(valid, 'loss'), markers: true }] : []),
    ],
  };
  const ppl: ChartSpec = {
    title: `Perplexity: ${cfg.name} (${sub})`,
    xLabel: 'step',
    yLabel: 'perplexity / codes',
    series: [
      { label: `train perplexity (batch ${cfg.batchSize})`, x: col(train, 'step'), y: col(train, 'perplexity') },
      { label: 'codes used per log interval', x: col(train, 'step'), y: col(train, 'codebook_usage') },
      ...(valid.length ? [{ label: 'valid perplexity', x: col(valid, 'step'), y: col(valid, 'perplexity'), markers: true }] : []),
    ],
  };
  writeCharts(files.lossPng, [loss]);
  writeCharts(files.perplexityPng, [ppl]);
}

