// The training loop: data, model, Adam, the run folder, logging, validation, checkpoints,
// reconstruction grids, curves and the final evaluation (see runfiles.ts for the folder).
//
// Trust:
// - Exact resume: a checkpoint holds the weights, Adam's moments and step counts, the EMA
//   codebook state, and (as JSON) the loader's state; the losses of N steps + resume + N steps
//   equal those of 2N steps bit for bit.
// - Losses are read back only at logging steps (a read makes the CPU wait for the GPU); every
//   step's losses are copied on the GPU into a small buffer that is read and checked then, so
//   a NaN or infinite loss is caught at the next logging step, and checkpoints are written only
//   after every step before them was checked (and the weights are finite).
// - An abort (the CLI's Ctrl-C / SIGTERM) finishes the current step, saves and returns.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { noGrad } from '../engine/autograd.js';
import { Adam } from '../engine/optim.js';
import { init } from '../engine/node.js';
import { tensor, tidy } from '../engine/tensor.js';
import { CodeUsage } from '../engine/vq.js';
import { initFromCheckpoint, loadCheckpoint, modelPath, saveCheckpoint, trainPath } from '../model/checkpoint_files.js';
import { countParams } from '../model/params.js';
import { VqVae } from '../model/vqvae.js';
import { type GivenConfig, type TrainConfig, RESUMABLE_KEYS, formatLr, kebab, modelConfig, readRunConfig, validateTrainConfig } from './config.js';
import { type DataConfig, DataLoader, IMAGE_SIZE, type LoaderState, getImages, openDataset } from './data/index.js';
import { type EvalResult, evaluate, limitSplit, writeReconGrid } from './evaluate.js';
import { type MetricRow, MetricsLog, psnr } from './metrics.js';
import { type ChartSpec, writeCharts } from './plot.js';
import { Progress, type ProgressMode, StepClock, fmt, formatDuration } from './progress.js';
import { RunFiles, readJson, writeJsonAtomic } from './runfiles.js';
import { ScalarLog } from './scalars.js';
import { lrAt, trainStep } from './step.js';

export interface TrainOptions {
  /** Continue the run folder from its latest checkpoint (else it must not exist). */
  resume?: boolean;
  /** Replace an existing run folder (new runs only). */
  overwrite?: boolean;
  progress?: ProgressMode;
  /** Aborting finishes the current step, saves a checkpoint and returns 'interrupted'. */
  signal?: AbortSignal;
  /** Messages (default: printed above the progress bar). */
  print?: (line: string) => void;
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

export class DivergedError extends Error {
  override name = 'DivergedError';
}

const STEP_FIELDS = ['loss', 'recon', 'codebook', 'commitment', 'perplexity'] as const;

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
}

function isFiniteRow(r: Record<string, number>): boolean {
  return STEP_FIELDS.every((f) => Number.isFinite(r[f]));
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

/** Trains according to `cfg`; see TrainOptions. */
export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  validateTrainConfig(cfg);
  const r = await init();
  const runDir = join(cfg.runsDir, cfg.name);
  const files = new RunFiles(runDir);
  const progress = new Progress(opts.progress ?? 'auto');
  const say = (line: string) => {
    files.appendLog(line);
    if (opts.print) opts.print(line);
    else progress.message(line);
  };

  // ---- the run folder
  let resumeFrom: { base: string; step: number } | null = null;
  if (opts.resume) {
    if (!existsSync(files.config)) throw new Error(`cannot resume ${runDir}: no config.json there`);
    resumeFrom = files.latest();
  } else if (existsSync(runDir) && readdirSync(runDir).length > 0) {
    if (!opts.overwrite) throw new Error(`${runDir} already exists: resume it with --resume ${runDir}, choose another --name, or pass --overwrite`);
    rmSync(runDir, { recursive: true, force: true });
  }
  files.make();

  // ---- data, model, optimiser
  const ds = await openDataset(dataConfig(cfg, opts.signal, opts.progress === 'none' ? 'none' : 'auto'));
  if (ds.splits.train.length === 0) throw new Error(`${ds.description}: the train split is empty`);
  const mcfg = modelConfig(cfg);
  const model = new VqVae(mcfg, { seed: cfg.seed });
  const opt = new Adam(model.parameters(), { lr: cfg.lr });
  const loader = new DataLoader(ds, { batchSize: cfg.batchSize, seed: cfg.seed, sampling: cfg.sampling });
  const valSplit = ds.splits.valid.length > 0 ? 'valid' : null;
  const valLoader = valSplit ? new DataLoader(limitSplit(ds, 'valid', cfg.valImages), { batchSize: cfg.batchSize }) : null;
  const stepLog = new ScalarLog(STEP_FIELDS, cfg.logEvery);
  const usage = new CodeUsage(mcfg.codebookSize);
  const metrics = new MetricsLog(files.metricsJsonl, files.metricsCsv);

  let step = 0;
  let bestValLoss: number | null = null;
  let bestStep: number | null = null;
  let elapsedBefore = 0;
  let lastCheckpoint: string | null = null;
  let stopClock = () => {};
  try {
    if (resumeFrom) {
      const info = await loadCheckpoint(resumeFrom.base, model, { optimizer: opt });
      const st = info.train as unknown as TrainState | null;
      if (!st || st.version !== 1 || !st.loader) throw new Error(`${trainPath(resumeFrom.base)}: no trainer state; cannot resume exactly`);
      loader.setState(st.loader);
      if (opt.lr !== lrAt(cfg, info.step - 1)) say(`learning rate ${opt.lr} -> ${lrAt(cfg, info.step)} (--lr or --steps changed on resume)`);
      step = info.step;
      bestValLoss = st.bestValLoss;
      bestStep = st.bestStep;
      elapsedBefore = st.elapsed;
      lastCheckpoint = resumeFrom.base;
      // checkpoints beyond this one belong to a history that is being replaced
      for (const c of files.stepCheckpoints()) {
        if (c.step > step) {
          rmSync(modelPath(c.base), { force: true });
          rmSync(trainPath(c.base), { force: true });
        }
      }
    } else if (opts.resume) {
      say(`${runDir}: no checkpoint yet; starting from step 0`);
    }
    if (!resumeFrom && cfg.initFrom) {
      const notes: string[] = [];
      const info = await initFromCheckpoint(cfg.initFrom, model, { onWarning: (m) => notes.push(m) });
      for (const n of notes) say(n);
      say(`initial weights from ${cfg.initFrom} (${info.format === 'pt' ? 'torch.save file' : 'safetensors'}, ${info.names} names${info.key ? `, key '${info.key}'` : ''}); step 0, fresh Adam`);
    }
    metrics.start(resumeFrom ? step : null);
    const gpuInfo = { adapter: r.caps.description, isCpu: r.caps.isCpu };
    const prevConfig = readJson<Record<string, unknown>>(files.config);
    writeJsonAtomic(files.config, {
      ...cfg,
      version: 1,
      created: (prevConfig?.created as string | undefined) ?? new Date().toISOString(),
      ...gpuInfo,
      dataset: ds.description,
      parameters: countParams(mcfg),
      ...(opts.meta ?? {}),
    });

    const header = resumeFrom ? `resuming ${runDir} at step ${step}/${cfg.steps}` : `run ${runDir}`;
    say(`${header} | ${r.caps.description} (${r.caps.isCpu ? 'CPU' : 'GPU'} device)`);
    say(`data: ${ds.description}`);
    say(
      `model: hidden ${mcfg.hidden}, residual ${mcfg.residualHidden}x${mcfg.residualBlocks}, K ${mcfg.codebookSize}, D ${mcfg.embeddingDim}, ` +
        `beta ${mcfg.beta}${mcfg.ema ? `, EMA codebook (decay ${mcfg.emaDecay})` : ''}; ${countParams(mcfg).toLocaleString('en-US')} parameters`,
    );
    say(`training: ${cfg.steps} steps, batch ${cfg.batchSize}, Adam lr ${cfg.lr}${cfg.lrSchedule === 'cosine' ? ' (cosine decay)' : ''}, seed ${cfg.seed}; log every ${cfg.logEvery}, validate every ${cfg.valEvery} on ${valLoader ? valLoader.dataset.splits.valid.length : 0} images`);

    // A run stopped during its final evaluation has all its steps but no eval.json: it goes on
    // past the (empty) loop to the evaluation.
    if (step >= cfg.steps && existsSync(files.evalJson)) {
      const message = `${runDir} is already complete at step ${step} (raise --steps to train further)`;
      say(message);
      files.writeStatus({ state: 'finished', step, steps: cfg.steps, checkpoint: lastCheckpoint });
      return { status: 'finished', step, runDir, eval: readJson<EvalResult>(files.evalJson), checkpoint: lastCheckpoint, message };
    }
    files.writeStatus({ state: 'running', step, steps: cfg.steps, checkpoint: lastCheckpoint });

    // fixed images for the reconstruction grids
    const gridSplit = valSplit ?? 'train';
    const gridImages = getImages(ds, gridSplit, Math.min(16, ds.splits[gridSplit].length));
    const gridN = gridImages.length / (3 * IMAGE_SIZE * IMAGE_SIZE);

    // ---- helpers
    const sessionStart = performance.now();
    const elapsed = () => elapsedBefore + (performance.now() - sessionStart) / 1000;
    let intervalStart = performance.now();
    let intervalSteps = 0;
    const clock = new StepClock(r, (line) => progress.message(line)); // ETAs from warm steps only
    stopClock = () => clock.close();
    const shown: { row: MetricRow | null } = { row: null }; // the latest train row, for the bar
    let lastPlot = 0;

    /** Reads the losses recorded since the last read, checks them, and writes a train row. */
    const flushLog = async (): Promise<void> => {
      if (stepLog.count === 0) return;
      const n = stepLog.count;
      const usedT = usage.used();
      const rows = await stepLog.read();
      const used = await usedT.item();
      usedT.dispose();
      usage.reset();
      const firstStep = step - n + 1;
      const bad = rows.findIndex((row) => !isFiniteRow(row));
      if (bad >= 0) {
        const row = rows[bad];
        throw new DivergedError(
          `the loss became ${row.loss} at step ${firstStep + bad} (reconstruction ${row.recon}, codebook ${row.codebook}, commitment ${row.commitment})`,
        );
      }
      const mean = (f: (typeof STEP_FIELDS)[number]) => rows.reduce((s, row) => s + row[f], 0) / n;
      const seconds = (performance.now() - intervalStart) / 1000;
      intervalStart = performance.now();
      const stepsPerSecond = intervalSteps / Math.max(seconds, 1e-9);
      intervalSteps = 0;
      const recon = mean('recon');
      const row: MetricRow = {
        step,
        split: 'train',
        loss: mean('loss'),
        recon_mse: recon,
        codebook_loss: mean('codebook'),
        commitment_loss: mean('commitment'),
        perplexity: mean('perplexity'),
        codebook_usage: used,
        psnr: psnr(recon),
        lr: opt.lr,
        images_per_s: stepsPerSecond * cfg.batchSize,
        elapsed_s: elapsed(),
      };
      metrics.append(row);
      shown.row = row;
      progress.log({
        step,
        total: cfg.steps,
        elapsed: row.elapsed_s!,
        rate: clock.rate,
        compiling: clock.compiling,
        loss: row.loss,
        recon: row.recon_mse,
        perplexity: row.perplexity,
        usage: used,
        codebookSize: mcfg.codebookSize,
        imagesPerSecond: row.images_per_s!,
      });
      if (performance.now() - lastPlot > 20_000) plots();
    };

    const plots = (): void => {
      lastPlot = performance.now();
      writePlots(files, metrics.rows, cfg);
    };

    const weightsFinite = async (): Promise<boolean> => {
      for (const t of model.state.values()) {
        const v = (await t.read()) as Float32Array;
        for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
      }
      return true;
    };

    const saveLatest = async (): Promise<void> => {
      await flushLog(); // throws on a non-finite loss: nothing unchecked is saved
      if (lastCheckpoint === files.stepBase(step) && existsSync(modelPath(lastCheckpoint))) return;
      if (!(await weightsFinite())) throw new DivergedError(`the weights hold non-finite values after step ${step}`);
      const state: TrainState = { version: 1, loader: loader.getState(), bestValLoss, bestStep, elapsed: elapsed() };
      const base = files.stepBase(step);
      await saveCheckpoint(base, model, { step, optimizer: opt, train: state as unknown as Record<string, unknown>, names: cfg.names });
      files.commitCheckpoint(step, cfg.keepCheckpoints);
      lastCheckpoint = base;
    };

    const validate = async (): Promise<void> => {
      if (!valLoader) return;
      await flushLog();
      const v = await evaluate(model, valLoader, 'valid', { batchSize: cfg.batchSize });
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
        elapsed_s: elapsed(),
      };
      if (!Number.isFinite(v.loss)) throw new DivergedError(`the validation loss became ${v.loss} at step ${step}`);
      metrics.append(row);
      let note = '';
      if (bestValLoss === null || v.loss < bestValLoss) {
        bestValLoss = v.loss;
        bestStep = step;
        await saveCheckpoint(files.best, model, { step, names: cfg.names });
        note = ' (best so far; saved)';
      }
      say(
        `validation at step ${step}: loss ${fmt(v.loss)}, recon MSE ${fmt(v.recon_mse)}, PSNR ${v.psnr.toFixed(2)} dB, ` +
          `perplexity ${v.batch_perplexity.toFixed(1)}, ${v.codebook_usage}/${mcfg.codebookSize} codes used${note}`,
      );
      plots();
    };

    const grid = async (path: string): Promise<void> => {
      const xHat = tidy(() => noGrad(() => model.forward(tensor(gridImages, [gridN, 3, IMAGE_SIZE, IMAGE_SIZE]), { train: false }).xHat));
      const recon = (await xHat.read()) as Float32Array;
      xHat.dispose();
      writeReconGrid(path, gridImages, recon, gridN);
    };

    // ---- the loop
    let status: TrainResult['status'] = 'finished';
    let message = '';
    let inFlight: Promise<void> | null = null;
    try {
      while (step < cfg.steps) {
        if (opts.signal?.aborted) {
          status = 'interrupted';
          break;
        }
        opt.lr = lrAt(cfg, step);
        const batch = await loader.next();
        if (opts.injectNanAtStep === step + 1) batch.fill(NaN);
        clock.beforeStep();
        trainStep(model, opt, batch, cfg.batchSize, (o) => {
          stepLog.record([o.loss, o.recon, o.codebookLoss, o.commitmentLoss, o.perplexity]);
          usage.update(o.counts);
        });
        step++;
        intervalSteps++;
        // keep at most one step queued behind the one running (the CPU records ahead, no stall)
        r.flush();
        const done = r.device.queue.onSubmittedWorkDone();
        if (inFlight) await inFlight;
        inFlight = done;
        clock.afterStep();
        progress.update({ step, total: cfg.steps, elapsed: elapsed(), rate: clock.rate, compiling: clock.compiling, loss: shown.row?.loss, perplexity: shown.row?.perplexity });

        const last = step === cfg.steps;
        if (step % cfg.logEvery === 0 || last) await flushLog();
        if (step % cfg.valEvery === 0 || last) await validate();
        if (step % cfg.gridEvery === 0) await grid(files.reconPath(step));
        if (step % cfg.checkpointEvery === 0 || last) await saveLatest();
      }
      if (inFlight) await inFlight;
      if (status === 'interrupted') {
        await saveLatest();
        message = `interrupted at step ${step}/${cfg.steps}; checkpoint saved: resume with --resume ${runDir}`;
      }
    } catch (e) {
      if (!(e instanceof DivergedError)) throw e;
      status = 'diverged';
      message =
        `stopped: ${e.message}. ` +
        (lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint} (step ${files.latest()?.step ?? '?'}); ` : 'No checkpoint was saved before it; ') +
        (lastCheckpoint ? `continue from it with a lower rate: --resume ${runDir} --lr ${cfg.lr / 2}` : `try a lower --lr than ${cfg.lr}`) + '.';
    }
    progress.close();
    plots();

    if (status !== 'finished') {
      say(message);
      files.writeStatus({ state: status, step, steps: cfg.steps, message, checkpoint: lastCheckpoint });
      return { status, step, runDir, eval: null, checkpoint: lastCheckpoint, message };
    }

    // ---- final grid and evaluation
    await grid(files.reconPath('final'));
    const evalN = cfg.evalImages > 0 ? Math.min(cfg.evalImages, ds.splits[cfg.evalSplit].length) : ds.splits[cfg.evalSplit].length;
    let result: EvalResult | null = null;
    if (evalN > 0) {
      say(`final evaluation on ${evalN} ${cfg.evalSplit} images ...`);
      try {
        result = await evaluate(model, ds, cfg.evalSplit, { batchSize: cfg.batchSize, limit: cfg.evalImages || undefined, signal: opts.signal });
      } catch (e) {
        if (!opts.signal?.aborted) throw e;
        message = `interrupted during the final evaluation; training finished at step ${step} (checkpoint ${lastCheckpoint}); evaluate with npm run eval -- ${runDir}`;
        say(message);
        files.writeStatus({ state: 'interrupted', step, steps: cfg.steps, message, checkpoint: lastCheckpoint });
        return { status: 'interrupted', step, runDir, eval: null, checkpoint: lastCheckpoint, message };
      }
      writeJsonAtomic(files.evalJson, {
        run: cfg.name,
        checkpoint: 'final',
        step,
        ...result,
        best_valid_loss: bestValLoss,
        best_step: bestStep,
        train_seconds: elapsed(),
      });
      say(formatEval(result, `final model, step ${step}`));
    }
    message = `finished ${cfg.steps} steps in ${formatDuration(elapsed())}; run folder ${runDir}`;
    say(message);
    files.writeStatus({ state: 'finished', step, steps: cfg.steps, checkpoint: lastCheckpoint });
    return { status: 'finished', step, runDir, eval: result, checkpoint: lastCheckpoint, message };
  } catch (e) {
    progress.close();
    files.writeStatus({ state: 'failed', step, steps: cfg.steps, message: (e as Error).message, checkpoint: lastCheckpoint });
    files.appendLog(`failed: ${(e as Error).stack ?? e}`);
    throw e;
  } finally {
    stopClock();
    stepLog.dispose();
    usage.dispose();
    opt.dispose();
    model.dispose();
    await loader.close();
    await valLoader?.close();
  }
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

