// Training the gated PixelCNN prior (model/pixelcnn.ts) on the code maps of a trained VQ-VAE
// run (../shared/SPEC.md section 6). Everything lives in runs/<name>/prior/ with the VQ-VAE
// trainer's conventions (train/runfiles.ts): config.json, status.json, log.txt, metrics.jsonl
// and .csv, loss.png, checkpoints/step-NNNNNN(.train).safetensors + latest.json, and
// checkpoints/best.safetensors (lowest validation NLL). The codes of the training and
// validation images are computed once per VQ-VAE checkpoint and cached in
// prior/codes-<checkpoint id>.safetensors.
//
// NLL is reported in nats per code (the loss), bits per code (nats / ln 2) and bits per image
// dimension: the bits of a whole code map over the 3 x 64 x 64 values of the image it
// encodes (the VQ-VAE paper's measure of the prior; the decoder's own likelihood is not
// included).
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward, noGrad } from '../engine/autograd.js';
import { crossEntropy } from '../engine/cross_entropy.js';
import { Adam, type AdamState } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { init } from '../engine/node.js';
import { rt } from '../engine/runtime.js';
import { tensor, tidy } from '../engine/tensor.js';
import { modelFromCheckpoint, modelPath, trainPath } from '../model/checkpoint_files.js';
import { PixelCnn, type PixelCnnConfig, countPixelCnnParams, resolvePixelCnnConfig } from '../model/pixelcnn.js';
import { toFloat32, type WriteEntry } from '../model/safetensors.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors_file.js';
import type { VqVae } from '../model/vqvae.js';
import type { TrainConfig } from './config.js';
import { IMAGE_SIZE, type SplitName, getImages, openDataset, writeImageGrid } from './data/index.js';
import { readMetrics } from './metrics.js';
import { writeCharts } from './plot.js';
import { Progress, type ProgressMode, StepClock, fmt, formatDuration } from './progress.js';
import { RunFiles, readJson, writeJsonAtomic } from './runfiles.js';
import { ScalarLog } from './scalars.js';
import { dataConfig } from './trainer.js';

/** Values per image: the denominator of bits per dimension. */
export const IMAGE_DIMS = 3 * IMAGE_SIZE * IMAGE_SIZE;

/** Bits per code and per image dimension from a mean NLL in nats per code over maps of `codesPerMap` codes. */
export function nllBits(natsPerCode: number, codesPerMap: number, imageDims = IMAGE_DIMS): { bitsPerCode: number; bitsPerDim: number } {
  const bitsPerCode = natsPerCode / Math.LN2;
  return { bitsPerCode, bitsPerDim: (bitsPerCode * codesPerMap) / imageDims };
}

export interface PriorConfig {
  /** The VQ-VAE run folder (runs/<name>). */
  run: string;
  preset: 'gpu' | 'cpu';
  width: number;
  layers: number;
  headWidth: number;
  firstKernel: number;
  kernel: number;
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Images encoded for training / validation (0: the whole split). */
  trainImages: number;
  validImages: number;
  logEvery: number;
  valEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
}

/** SPEC section 6 on a GPU: width 128, 15 mask-B layers, Adam 3e-4. */
export const PRIOR_GPU_PRESET: Omit<PriorConfig, 'run'> = {
  preset: 'gpu', width: 128, layers: 15, headWidth: 256, firstKernel: 7, kernel: 3,
  steps: 20000, batchSize: 64, lr: 3e-4, seed: 0, trainImages: 0, validImages: 2000,
  logEvery: 50, valEvery: 1000, checkpointEvery: 1000, keepCheckpoints: 2,
};

/** A few minutes on a CPU Vulkan device (lavapipe). */
export const PRIOR_CPU_PRESET: Omit<PriorConfig, 'run'> = {
  preset: 'cpu', width: 32, layers: 3, headWidth: 32, firstKernel: 7, kernel: 3,
  steps: 300, batchSize: 8, lr: 1e-3, seed: 0, trainImages: 1000, validImages: 100,
  logEvery: 20, valEvery: 150, checkpointEvery: 150, keepCheckpoints: 2,
};

/** Options that may change on --resume (everything else must match). */
export const PRIOR_RESUMABLE: (keyof PriorConfig)[] = ['steps', 'lr', 'logEvery', 'valEvery', 'checkpointEvery', 'keepCheckpoints'];

export function validatePriorConfig(c: PriorConfig): void {
  const posInt = ['width', 'layers', 'headWidth', 'firstKernel', 'kernel', 'steps', 'batchSize', 'logEvery', 'valEvery', 'checkpointEvery', 'keepCheckpoints'] as const;
  for (const k of posInt) if (!Number.isInteger(c[k]) || c[k] < (k === 'layers' ? 0 : 1)) throw new Error(`prior: --${kebab(k)} must be a positive integer, got ${c[k]}`);
  for (const k of ['trainImages', 'validImages', 'seed'] as const) if (!Number.isInteger(c[k]) || c[k] < 0) throw new Error(`prior: --${kebab(k)} must be a non-negative integer, got ${c[k]}`);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new Error(`prior: --lr must be positive, got ${c.lr}`);
  resolvePixelCnnConfig({ ...pixelCnnConfig(c, 2) });
}

export function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (m) => '-' + m.toLowerCase());
}

export function pixelCnnConfig(c: PriorConfig, numCodes: number): PixelCnnConfig {
  return resolvePixelCnnConfig({ numCodes, width: c.width, layers: c.layers, headWidth: c.headWidth, firstKernel: c.firstKernel, kernel: c.kernel });
}

// ---- the VQ-VAE side: which checkpoint, and its codes

/** The VQ-VAE checkpoint of a run: best (lowest validation loss) if any, else the latest. */
export function vqvaeCheckpoint(runDir: string): string {
  const files = new RunFiles(runDir);
  if (existsSync(modelPath(files.best))) return files.best;
  const latest = files.latest();
  if (!latest) throw new Error(`${runDir}: no VQ-VAE checkpoint (checkpoints/best or a step checkpoint); train one first with npm run train`);
  return latest.base;
}

export interface CodeSet {
  /** u32 [n, h, w]. */
  train: Uint32Array;
  valid: Uint32Array;
  nTrain: number;
  nValid: number;
  h: number;
  w: number;
  numCodes: number;
}

/** Codes of the first `n` images of a split, encoded in batches. */
export async function encodeImages(model: VqVae, images: (start: number, count: number) => Float32Array, n: number, batch: number, onBatch?: (done: number) => void): Promise<Uint32Array> {
  const [h, w] = model.latentSize(IMAGE_SIZE, IMAGE_SIZE);
  const out = new Uint32Array(n * h * w);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const codes = tidy(() => model.encode(tensor(images(s, m), [m, 3, IMAGE_SIZE, IMAGE_SIZE])));
    out.set((await codes.read()) as Uint32Array, s * h * w);
    codes.dispose();
    onBatch?.(s + m);
  }
  return out;
}

/**
 * The codes of the run's training and validation images under checkpoint `base`, from the
 * cache when it holds them for this checkpoint (its id) and these counts, else encoded now.
 */
export async function loadOrEncodeCodes(runDir: string, base: string, cfg: PriorConfig, say: (s: string) => void, signal?: AbortSignal): Promise<{ codes: CodeSet; model: VqVae; vqvaeId: string; dataset: string }> {
  const meta = readSafetensors(modelPath(base)).metadata;
  const vqvaeId = meta['vqvae.id'] ?? 'unknown';
  const runCfg = readJson<TrainConfig>(new RunFiles(runDir).config);
  if (!runCfg) throw new Error(`${runDir}: no config.json (not a run folder?)`);
  const { model } = await modelFromCheckpoint(base);
  const [h, w] = model.latentSize(IMAGE_SIZE, IMAGE_SIZE);
  const numCodes = model.config.codebookSize;
  const priorDir = join(runDir, 'prior');
  mkdirSync(priorDir, { recursive: true });
  const cachePath = join(priorDir, `codes-${vqvaeId}.safetensors`);
  const ds = await openDataset(dataConfig(runCfg, undefined, 'none'));
  const count = (split: SplitName, limit: number) => (limit > 0 ? Math.min(limit, ds.splits[split].length) : ds.splits[split].length);
  const nTrain = count('train', cfg.trainImages);
  const nValid = count('valid', cfg.validImages);
  if (nTrain === 0) throw new Error(`${ds.description}: the train split is empty`);
  if (existsSync(cachePath)) {
    const f = readSafetensors(cachePath);
    const tr = f.tensors.get('train');
    const va = f.tensors.get('valid');
    if (tr && va && f.metadata.dataset === ds.description && tr.shape[0] === nTrain && va.shape[0] === nValid && tr.dtype === 'U32' && va.dtype === 'U32') {
      say(`codes: cached ${cachePath} (${nTrain} train, ${nValid} valid maps)`);
      const u32 = (b: Uint8Array) => new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      return { codes: { train: u32(tr.bytes), valid: u32(va.bytes), nTrain, nValid, h, w, numCodes }, model, vqvaeId, dataset: ds.description };
    }
  }
  say(`codes: encoding ${nTrain} train and ${nValid} valid images with ${modelPath(base)} ...`);
  const t0 = performance.now();
  const enc = (split: SplitName, n: number) =>
    encodeImages(model, (s, m) => {
      if (signal?.aborted) throw new Error('interrupted while encoding the codes (nothing cached)');
      return getImages(ds, split, Array.from({ length: m }, (_, i) => s + i));
    }, n, 32);
  const train = await enc('train', nTrain);
  const valid = await enc('valid', nValid);
  writeSafetensors(cachePath, {
    train: { dtype: 'U32', shape: [nTrain, h, w], data: train },
    valid: { dtype: 'U32', shape: [nValid, h, w], data: valid },
  }, { 'vqvae.id': vqvaeId, checkpoint: base, dataset: ds.description });
  say(`codes: encoded in ${formatDuration((performance.now() - t0) / 1000)}; cached in ${cachePath}`);
  return { codes: { train, valid, nTrain, nValid, h, w, numCodes }, model, vqvaeId, dataset: ds.description };
}

// ---- prior checkpoints

export interface PriorCheckpointInfo {
  step: number;
  config: PixelCnnConfig;
  train: Record<string, unknown> | null;
}

/** Writes `<base>.safetensors` (parameters, config) and, with an optimiser, `<base>.train.safetensors`. */
export async function savePriorCheckpoint(base: string, model: PixelCnn, opts: { step: number; optimizer?: Adam; train?: Record<string, unknown> }): Promise<void> {
  const id = randomBytes(8).toString('hex');
  const entries: Record<string, WriteEntry> = {};
  for (const [name, t] of model.params) entries[name] = { dtype: 'F32', shape: [...t.shape], data: (await t.read()) as Float32Array };
  if (opts.optimizer) {
    const st = await opts.optimizer.state();
    const names = [...model.params.keys()];
    const tEntries: Record<string, WriteEntry> = {};
    const steps: Record<string, number> = {};
    st.params.forEach((p, i) => {
      if (!p) return;
      const shape = [...model.params.get(names[i])!.shape];
      tEntries[`${names[i]}.exp_avg`] = { dtype: 'F32', shape, data: p.m };
      tEntries[`${names[i]}.exp_avg_sq`] = { dtype: 'F32', shape, data: p.v };
      steps[names[i]] = p.step;
    });
    const { params: _, ...rest } = st;
    writeSafetensors(trainPath(base), tEntries, { 'pixelcnn.id': id, 'pixelcnn.optimizer': JSON.stringify({ ...rest, steps }), 'pixelcnn.train': JSON.stringify(opts.train ?? {}) });
  }
  writeSafetensors(modelPath(base), entries, { 'pixelcnn.id': id, 'pixelcnn.step': String(opts.step), 'pixelcnn.config': JSON.stringify(model.config) });
}

/** A PixelCnn built from a checkpoint's config with its weights (and optionally Adam's state, via `makeOptimizer`). */
export async function loadPriorCheckpoint(base: string, makeOptimizer?: (m: PixelCnn) => Adam): Promise<{ model: PixelCnn; info: PriorCheckpointInfo; optimizer: Adam | null }> {
  const f = readSafetensors(modelPath(base));
  const raw = f.metadata['pixelcnn.config'];
  if (!raw) throw new Error(`${modelPath(base)}: not a PixelCNN prior checkpoint (no 'pixelcnn.config' metadata)`);
  const config = resolvePixelCnnConfig(JSON.parse(raw) as PixelCnnConfig);
  const model = new PixelCnn(config);
  for (const [name, t] of model.params) {
    const st = f.tensors.get(name);
    if (!st || st.shape.join() !== t.shape.join()) {
      model.dispose();
      throw new Error(`${modelPath(base)}: '${name}' is ${st ? `[${st.shape.join(', ')}]` : 'missing'}, the model needs [${t.shape.join(', ')}]`);
    }
    const v = toFloat32(st);
    if (v.some((x) => !Number.isFinite(x))) throw new Error(`${modelPath(base)}: '${name}' holds non-finite values`);
    rt().overwrite(t.buffer, v);
  }
  let train: Record<string, unknown> | null = null;
  let optimizer: Adam | null = null;
  if (existsSync(trainPath(base))) {
    const tf = readSafetensors(trainPath(base));
    if (tf.metadata['pixelcnn.id'] !== f.metadata['pixelcnn.id']) throw new Error(`${trainPath(base)} belongs to another checkpoint than ${modelPath(base)}`);
    train = JSON.parse(tf.metadata['pixelcnn.train'] ?? '{}') as Record<string, unknown>;
    if (makeOptimizer) {
      optimizer = makeOptimizer(model);
      const o = JSON.parse(tf.metadata['pixelcnn.optimizer']) as Omit<AdamState, 'params'> & { steps: Record<string, number> };
      const names = [...model.params.keys()];
      optimizer.loadState({
        ...o,
        params: names.map((n) => {
          const s = o.steps[n];
          if (s === undefined) return null;
          return { step: s, m: toFloat32(tf.tensors.get(`${n}.exp_avg`)!), v: toFloat32(tf.tensors.get(`${n}.exp_avg_sq`)!) };
        }),
      });
    }
  }
  return { model, info: { step: Number(f.metadata['pixelcnn.step'] ?? 0), config, train }, optimizer };
}

// ---- metrics (jsonl + csv; same layout and resume rule as train/metrics.ts)

export interface PriorRow {
  step: number;
  split: 'train' | 'valid';
  nll_nats: number;
  bits_per_code: number;
  bits_per_dim: number;
  lr: number | null;
  maps_per_s: number | null;
  elapsed_s: number;
}
const PRIOR_COLUMNS: (keyof PriorRow)[] = ['step', 'split', 'nll_nats', 'bits_per_code', 'bits_per_dim', 'lr', 'maps_per_s', 'elapsed_s'];

class PriorMetrics {
  readonly rows: PriorRow[] = [];
  constructor(readonly files: RunFiles) {}
  start(resumeStep: number | null): void {
    const kept = resumeStep === null ? [] : (readMetrics(this.files.metricsJsonl) as unknown as PriorRow[]).filter((r) => r.step <= resumeStep);
    this.rows.push(...kept);
    const write = (path: string, text: string) => {
      writeFileSync(`${path}.tmp`, text);
      renameSync(`${path}.tmp`, path);
    };
    write(this.files.metricsJsonl, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    write(this.files.metricsCsv, [PRIOR_COLUMNS.join(','), ...kept.map((r) => PRIOR_COLUMNS.map((c) => r[c] ?? '').join(','))].join('\n') + '\n');
  }
  append(r: PriorRow): void {
    this.rows.push(r);
    appendFileSync(this.files.metricsJsonl, JSON.stringify(r, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) + '\n');
    appendFileSync(this.files.metricsCsv, PRIOR_COLUMNS.map((c) => r[c] ?? '').join(',') + '\n');
  }
}

// ---- validation

/** Mean NLL in nats per code of `codes` (u32 [n, h, w]) under `model`, in batches. */
export async function priorNll(model: PixelCnn, codes: Uint32Array, n: number, h: number, w: number, batch: number): Promise<number> {
  let total = 0;
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const loss = tidy(() =>
      noGrad(() => {
        const c = tensor(codes.subarray(s * h * w, (s + m) * h * w), [m, h, w], 'u32');
        return crossEntropy(model.forward(c), c);
      }),
    );
    total += (await loss.item()) * m;
    loss.dispose();
  }
  return total / n;
}

// ---- training

export interface PriorTrainOptions {
  resume?: boolean;
  overwrite?: boolean;
  progress?: ProgressMode;
  signal?: AbortSignal;
  print?: (line: string) => void;
}

export interface PriorResult {
  status: 'finished' | 'interrupted';
  step: number;
  dir: string;
  valid: { nats: number; bitsPerCode: number; bitsPerDim: number } | null;
}

interface PriorTrainState {
  version: 1;
  rng: number[];
  bestValid: number | null;
  elapsed: number;
}

/** Trains the prior of `cfg.run` (see the file header). */
export async function trainPrior(cfg: PriorConfig, opts: PriorTrainOptions = {}): Promise<PriorResult> {
  validatePriorConfig(cfg);
  const r = await init();
  const dir = join(cfg.run, 'prior');
  const files = new RunFiles(dir);
  const progress = new Progress(opts.progress ?? 'auto');
  let resumeFrom = opts.resume ? files.latest() : null;
  if (!opts.resume && existsSync(files.checkpointDir) && readdirSync(files.checkpointDir).length > 0) {
    if (!opts.overwrite) throw new Error(`${dir} already holds a prior: continue it with --resume, or pass --overwrite`);
    rmSync(files.checkpointDir, { recursive: true, force: true });
  }
  mkdirSync(files.checkpointDir, { recursive: true });
  const say = (line: string) => {
    files.appendLog(line);
    if (opts.print) opts.print(line);
    else progress.message(line);
  };

  const vqBase = vqvaeCheckpoint(cfg.run);
  const { codes, model: vqvae, vqvaeId, dataset } = await loadOrEncodeCodes(cfg.run, vqBase, cfg, say, opts.signal);
  const { h, w, numCodes } = codes;
  const mapDims = h * w;
  let model: PixelCnn;
  let opt: Adam;
  const makeOpt = (m: PixelCnn) => new Adam(m.parameters(), { lr: cfg.lr });
  let step = 0;
  const rng = new Rng(cfg.seed);
  let bestValid: number | null = null;
  let elapsedBefore = 0;
  if (resumeFrom) {
    const loaded = await loadPriorCheckpoint(resumeFrom.base, makeOpt);
    model = loaded.model;
    opt = loaded.optimizer!;
    opt.lr = cfg.lr;
    const st = loaded.info.train as unknown as PriorTrainState;
    rng.setState(st.rng);
    bestValid = st.bestValid;
    elapsedBefore = st.elapsed;
    step = loaded.info.step;
    for (const c of files.stepCheckpoints()) if (c.step > step) for (const p of [modelPath(c.base), trainPath(c.base)]) rmSync(p, { force: true });
  } else {
    if (opts.resume) say(`${dir}: no prior checkpoint yet; starting from step 0`);
    resumeFrom = null;
    model = new PixelCnn(pixelCnnConfig(cfg, numCodes), { seed: cfg.seed });
    opt = makeOpt(model);
  }
  const metrics = new PriorMetrics(files);
  metrics.start(resumeFrom ? step : null);
  writeJsonAtomic(files.config, { ...cfg, version: 1, vqvaeCheckpoint: vqBase, vqvaeId, dataset, adapter: r.caps.description, isCpu: r.caps.isCpu, parameters: countPixelCnnParams(model.config) });
  files.writeStatus({ state: 'running', step, steps: cfg.steps, checkpoint: resumeFrom?.base ?? null });
  const mc = model.config;
  say(`${resumeFrom ? `resuming ${dir} at step ${step}/${cfg.steps}` : `prior ${dir}`} | ${r.caps.description} (${r.caps.isCpu ? 'CPU' : 'GPU'} device)`);
  say(`codes: ${codes.nTrain} train, ${codes.nValid} valid maps of ${h}x${w}, K ${numCodes} (VQ-VAE ${modelPath(vqBase)})`);
  say(`PixelCNN: width ${mc.width}, 1 mask-A ${mc.firstKernel}x${mc.firstKernel} + ${mc.layers} mask-B ${mc.kernel}x${mc.kernel} gated layers, head ${mc.headWidth}; ${countPixelCnnParams(mc).toLocaleString('en-US')} parameters`);
  say(`training: ${cfg.steps} steps, batch ${cfg.batchSize}, Adam lr ${cfg.lr}, seed ${cfg.seed}`);
  if (!resumeFrom) {
    const show = Math.min(64, codes.nTrain);
    const imgs = vqvae.decode(tensor(codes.train.subarray(0, show * mapDims), [show, h, w], 'u32'));
    writeImageGrid(join(dir, 'train-codes.png'), (await imgs.read()) as Float32Array, show, 8);
    imgs.dispose();
  }
  vqvae.dispose();

  const stepLog = new ScalarLog(['loss'], cfg.logEvery);
  const sessionStart = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - sessionStart) / 1000;
  let intervalStart = performance.now();
  let intervalSteps = 0;
  let rate = 0;
  // a cold start's compiling says so; intervals that compiled kernels do not count for the ETA
  const clock = new StepClock(r, (line) => progress.message(line));
  let kernelsBefore = 0;
  const compiling = () => (rate === 0 ? clock.compiling : undefined);
  let lastValid: PriorResult['valid'] = null;
  const batchCodes = new Uint32Array(cfg.batchSize * mapDims);

  const plots = () => {
    const tr = metrics.rows.filter((x) => x.split === 'train');
    const va = metrics.rows.filter((x) => x.split === 'valid');
    writeCharts(files.lossPng, [{
      title: `PixelCNN prior NLL: ${cfg.run} (width ${mc.width}, ${mc.layers} layers, lr ${cfg.lr})`,
      xLabel: 'step',
      yLabel: 'bits per code',
      series: [
        { label: 'train', x: tr.map((x) => x.step), y: tr.map((x) => x.bits_per_code) },
        ...(va.length ? [{ label: 'valid', x: va.map((x) => x.step), y: va.map((x) => x.bits_per_code), markers: true }] : []),
      ],
    }]);
  };
  const flush = async () => {
    if (stepLog.count === 0) return;
    const n = stepLog.count;
    const rows = await stepLog.read();
    const nats = rows.reduce((s, x) => s + x.loss, 0) / n;
    if (!Number.isFinite(nats)) throw new Error(`the prior's loss became ${nats} near step ${step}; try a lower --lr than ${cfg.lr}`);
    const secs = (performance.now() - intervalStart) / 1000;
    intervalStart = performance.now();
    const sps = intervalSteps / Math.max(secs, 1e-9);
    intervalSteps = 0;
    if (clock.kernels === kernelsBefore) rate = rate === 0 ? sps : 0.5 * rate + 0.5 * sps;
    kernelsBefore = clock.kernels;
    const b = nllBits(nats, mapDims);
    metrics.append({ step, split: 'train', nll_nats: nats, bits_per_code: b.bitsPerCode, bits_per_dim: b.bitsPerDim, lr: opt.lr, maps_per_s: sps * cfg.batchSize, elapsed_s: elapsed() });
    // the trainer's progress line; "ppl" is the prior's perplexity per code, exp(nats)
    progress.log({ step, total: cfg.steps, elapsed: elapsed(), rate, compiling: compiling(), loss: nats, perplexity: Math.exp(nats), imagesPerSecond: sps * cfg.batchSize });
  };
  const validate = async () => {
    if (codes.nValid === 0) return;
    await flush();
    const nats = await priorNll(model, codes.valid, codes.nValid, h, w, cfg.batchSize);
    const b = nllBits(nats, mapDims);
    lastValid = { nats, ...b };
    metrics.append({ step, split: 'valid', nll_nats: nats, bits_per_code: b.bitsPerCode, bits_per_dim: b.bitsPerDim, lr: null, maps_per_s: null, elapsed_s: elapsed() });
    let note = '';
    if (bestValid === null || nats < bestValid) {
      bestValid = nats;
      await savePriorCheckpoint(files.best, model, { step });
      note = ' (best so far; saved)';
    }
    say(`validation at step ${step}: NLL ${fmt(nats)} nats = ${b.bitsPerCode.toFixed(3)} bits/code = ${b.bitsPerDim.toFixed(4)} bits/dim${note}`);
    plots();
  };
  const save = async () => {
    await flush();
    const base = files.stepBase(step);
    const st: PriorTrainState = { version: 1, rng: rng.getState(), bestValid, elapsed: elapsed() };
    await savePriorCheckpoint(base, model, { step, optimizer: opt, train: st as unknown as Record<string, unknown> });
    files.commitCheckpoint(step, cfg.keepCheckpoints);
  };

  let status: PriorResult['status'] = 'finished';
  try {
    while (step < cfg.steps) {
      if (opts.signal?.aborted) {
        status = 'interrupted';
        break;
      }
      // a batch of random training maps (with replacement; the generator's state is checkpointed)
      for (let i = 0; i < cfg.batchSize; i++) {
        const k = rng.int(codes.nTrain);
        batchCodes.set(codes.train.subarray(k * mapDims, (k + 1) * mapDims), i * mapDims);
      }
      clock.beforeStep();
      tidy(() => {
        const c = tensor(batchCodes, [cfg.batchSize, h, w], 'u32');
        const loss = crossEntropy(model.forward(c), c);
        backward(loss);
        stepLog.record([loss]);
      });
      opt.step();
      opt.zeroGrad();
      step++;
      intervalSteps++;
      r.flush();
      clock.afterStep();
      progress.update({ step, total: cfg.steps, elapsed: elapsed(), rate, compiling: compiling() });
      const last = step === cfg.steps;
      if (step % cfg.logEvery === 0 || last) await flush();
      if (step % cfg.valEvery === 0 || last) await validate();
      if (step % cfg.checkpointEvery === 0 || last) await save();
    }
    if (status === 'interrupted') await save();
    progress.close();
    plots();
    if (lastValid === null && codes.nValid > 0 && status === 'finished') await validate();
    const v = lastValid as PriorResult['valid'];
    const msg = status === 'finished'
      ? `finished ${step} steps in ${formatDuration(elapsed())}` + (v ? `; validation NLL ${v.bitsPerCode.toFixed(3)} bits/code, ${v.bitsPerDim.toFixed(4)} bits/dim` : '')
      : `interrupted at step ${step}; continue with npm run prior -- ${cfg.run} --resume`;
    say(msg);
    files.writeStatus({ state: status, step, steps: cfg.steps, message: msg, checkpoint: files.latest()?.base ?? null });
    return { status, step, dir, valid: v };
  } catch (e) {
    progress.close();
    files.writeStatus({ state: 'failed', step, steps: cfg.steps, message: (e as Error).message });
    throw e;
  } finally {
    clock.close();
    stepLog.dispose();
    opt.dispose();
    model.dispose();
  }
}
