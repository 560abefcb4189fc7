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
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { backward, noGrad } from '../engine/autograd.js';
import { crossEntropy } from '../engine/cross_entropy.js';
import { Adam, type AdamState } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { init } from '../engine/node.js';
import { type Runtime, rt } from '../engine/runtime.js';
import { type Tensor, tensor, tidy } from '../engine/tensor.js';
import { modelFromCheckpoint, modelPath, trainPath } from '../model/checkpoint_files.js';
import { PixelCnn, type PixelCnnConfig, countPixelCnnParams, resolvePixelCnnConfig } from '../model/pixelcnn.js';
import { toFloat32, type WriteEntry } from '../model/safetensors.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors_file.js';
import type { VqVae } from '../model/vqvae.js';
import type { TrainConfig } from './config.js';
import { IMAGE_SIZE, type SplitName, getImages, openDataset, writeImageGrid } from './data/index.js';
import { DivergedError, type Interval, type LoopStart, type LoopState, type LoopTask, RunSession, type SessionOptions, type Shown, TrainLoop } from './loop.js';
import { writeCharts } from './plot.js';
import { fmt, formatDuration } from './progress.js';
import { RunFiles, readJson, writeJsonAtomic } from './runfiles.js';
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

// ---- metrics (jsonl + csv; the same MetricsLog and resume rule as the VQ-VAE's)

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

export interface PriorTrainOptions extends SessionOptions {}

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

/** A prior being trained: its model, optimiser and batch generator. */
interface PriorParts {
  cfg: PriorConfig;
  codes: CodeSet;
  model: PixelCnn;
  opt: Adam;
  /** Draws the training maps of each batch (its state is checkpointed). */
  rng: Rng;
}

/** The prior to train: resumed from `resumeFrom` (weights, Adam, generator, loop state), or new. */
async function priorStart(cfg: PriorConfig, codes: CodeSet, session: RunSession, resumeFrom: { base: string } | null): Promise<{ parts: PriorParts; start: LoopStart }> {
  const makeOpt = (m: PixelCnn) => new Adam(m.parameters(), { lr: cfg.lr });
  const rng = new Rng(cfg.seed);
  if (resumeFrom) {
    const loaded = await loadPriorCheckpoint(resumeFrom.base, makeOpt);
    const opt = loaded.optimizer!;
    opt.lr = cfg.lr;
    const st = loaded.info.train as unknown as PriorTrainState;
    rng.setState(st.rng);
    const step = loaded.info.step;
    session.files.dropCheckpointsAfter(step);
    const start = { step, state: { bestValLoss: st.bestValid, bestStep: null, elapsed: st.elapsed }, checkpoint: resumeFrom.base };
    return { parts: { cfg, codes, model: loaded.model, opt, rng }, start };
  }
  if (session.opts.resume) session.say(`${session.files.dir}: no prior checkpoint yet; starting from step 0`);
  const model = new PixelCnn(pixelCnnConfig(cfg, codes.numCodes), { seed: cfg.seed });
  const start = { step: 0, state: { bestValLoss: null, bestStep: null, elapsed: 0 }, checkpoint: null };
  return { parts: { cfg, codes, model, opt: makeOpt(model), rng }, start };
}

/** The prior's part of the run loop. */
class PriorTask implements LoopTask<PriorRow> {
  readonly fields = ['loss'] as const;
  readonly columns = PRIOR_COLUMNS;
  readonly batchSize: number;
  readonly validates: boolean;
  readonly baseLr: number;
  /** The latest validation. */
  lastValid: PriorResult['valid'] = null;
  private readonly batchCodes: Uint32Array;

  constructor(
    private readonly p: PriorParts,
    private readonly files: RunFiles,
  ) {
    this.batchSize = p.cfg.batchSize;
    this.validates = p.codes.nValid > 0;
    this.baseLr = p.cfg.lr;
    this.batchCodes = new Uint32Array(p.cfg.batchSize * p.codes.h * p.codes.w);
  }

  async step(_step: number, write: (values: readonly (Tensor | null)[]) => void): Promise<void> {
    const { codes, model, opt, rng } = this.p;
    const mapDims = codes.h * codes.w;
    // a batch of random training maps (with replacement; the generator's state is checkpointed)
    for (let i = 0; i < this.batchSize; i++) {
      const k = rng.int(codes.nTrain);
      this.batchCodes.set(codes.train.subarray(k * mapDims, (k + 1) * mapDims), i * mapDims);
    }
    tidy(() => {
      const c = tensor(this.batchCodes, [this.batchSize, codes.h, codes.w], 'u32');
      const loss = crossEntropy(model.forward(c), c);
      backward(loss);
      write([loss]);
    });
    opt.step();
    opt.zeroGrad();
  }

  lr(): number {
    return this.p.opt.lr;
  }

  problem(row: Record<string, number>, step: number): string | null {
    return Number.isFinite(row.loss) ? null : `the prior's loss became ${row.loss} at step ${step}`;
  }

  async trainRow(i: Interval): Promise<{ row: PriorRow; shown: Shown }> {
    const nats = i.rows.reduce((s, x) => s + x.loss, 0) / i.rows.length;
    const b = nllBits(nats, this.p.codes.h * this.p.codes.w);
    const row: PriorRow = { step: i.step, split: 'train', nll_nats: nats, bits_per_code: b.bitsPerCode, bits_per_dim: b.bitsPerDim, lr: i.lr, maps_per_s: i.stepsPerSecond * this.batchSize, elapsed_s: i.elapsed };
    // the trainer's progress line; "ppl" is the prior's perplexity per code, exp(nats)
    return { row, shown: { loss: nats, perplexity: Math.exp(nats) } };
  }

  async validate(step: number, elapsed: number): Promise<{ row: PriorRow; loss: number; message: (note: string) => string }> {
    const { codes, model } = this.p;
    const nats = await priorNll(model, codes.valid, codes.nValid, codes.h, codes.w, this.batchSize);
    const b = nllBits(nats, codes.h * codes.w);
    this.lastValid = { nats, ...b };
    const row: PriorRow = { step, split: 'valid', nll_nats: nats, bits_per_code: b.bitsPerCode, bits_per_dim: b.bitsPerDim, lr: null, maps_per_s: null, elapsed_s: elapsed };
    const message = (note: string) => `validation at step ${step}: NLL ${fmt(nats)} nats = ${b.bitsPerCode.toFixed(3)} bits/code = ${b.bitsPerDim.toFixed(4)} bits/dim${note}`;
    return { row, loss: nats, message };
  }

  async saveBest(step: number): Promise<void> {
    await savePriorCheckpoint(this.files.best, this.p.model, { step });
  }

  async saveCheckpoint(base: string, step: number, loop: LoopState): Promise<void> {
    const st: PriorTrainState = { version: 1, rng: this.p.rng.getState(), bestValid: loop.bestValLoss, elapsed: loop.elapsed };
    await savePriorCheckpoint(base, this.p.model, { step, optimizer: this.p.opt, train: st as unknown as Record<string, unknown> });
  }

  weights(): Iterable<Tensor> {
    return this.p.model.params.values();
  }

  writePlots(rows: readonly PriorRow[]): void {
    const mc = this.p.model.config;
    const tr = rows.filter((x) => x.split === 'train');
    const va = rows.filter((x) => x.split === 'valid');
    writeCharts(this.files.lossPng, [{
      title: `PixelCNN prior NLL: ${this.p.cfg.run} (width ${mc.width}, ${mc.layers} layers, lr ${this.p.cfg.lr})`,
      xLabel: 'step',
      yLabel: 'bits per code',
      series: [
        { label: 'train', x: tr.map((x) => x.step), y: tr.map((x) => x.bits_per_code) },
        ...(va.length ? [{ label: 'valid', x: va.map((x) => x.step), y: va.map((x) => x.bits_per_code), markers: true }] : []),
      ],
    }]);
  }

  interrupted(step: number): string {
    return `interrupted at step ${step}; continue with npm run prior -- ${this.p.cfg.run} --resume`;
  }

  resumeHint(lr: number): string {
    return `npm run prior -- ${this.p.cfg.run} --resume --lr ${lr}`;
  }
}

/** config.json, the header lines, and (new priors) a grid of training maps decoded by the VQ-VAE. */
async function priorHeader(p: PriorParts, session: RunSession, r: Runtime, start: LoopStart, vq: { base: string; id: string; dataset: string; model: VqVae }): Promise<void> {
  const { cfg, codes, model } = p;
  const { h, w } = codes;
  const dir = session.files.dir;
  writeJsonAtomic(session.files.config, { ...cfg, version: 1, vqvaeCheckpoint: vq.base, vqvaeId: vq.id, dataset: vq.dataset, adapter: r.caps.description, isCpu: r.caps.isCpu, parameters: countPixelCnnParams(model.config) });
  session.files.writeStatus({ state: 'running', step: start.step, steps: cfg.steps, checkpoint: start.checkpoint });
  const mc = model.config;
  session.say(`${start.checkpoint ? `resuming ${dir} at step ${start.step}/${cfg.steps}` : `prior ${dir}`} | ${r.caps.description} (${r.caps.isCpu ? 'CPU' : 'GPU'} device)`);
  session.say(`codes: ${codes.nTrain} train, ${codes.nValid} valid maps of ${h}x${w}, K ${codes.numCodes} (VQ-VAE ${modelPath(vq.base)})`);
  session.say(`PixelCNN: width ${mc.width}, 1 mask-A ${mc.firstKernel}x${mc.firstKernel} + ${mc.layers} mask-B ${mc.kernel}x${mc.kernel} gated layers, head ${mc.headWidth}; ${countPixelCnnParams(mc).toLocaleString('en-US')} parameters`);
  session.say(`training: ${cfg.steps} steps, batch ${cfg.batchSize}, Adam lr ${cfg.lr}, seed ${cfg.seed}`);
  if (!start.checkpoint) {
    const show = Math.min(64, codes.nTrain);
    const imgs = vq.model.decode(tensor(codes.train.subarray(0, show * h * w), [show, h, w], 'u32'));
    writeImageGrid(join(dir, 'train-codes.png'), (await imgs.read()) as Float32Array, show, 8);
    imgs.dispose();
  }
}

/** Trains the prior of `cfg.run` (see the file header). A diverged run keeps its last good checkpoint and throws. */
export async function trainPrior(cfg: PriorConfig, opts: PriorTrainOptions = {}): Promise<PriorResult> {
  validatePriorConfig(cfg);
  const r = await init();
  const dir = join(cfg.run, 'prior');
  const session = new RunSession(dir, opts);
  const resumeFrom = session.claim({ fresh: 'checkpoints', exists: `${dir} already holds a prior: continue it with --resume, or pass --overwrite`, noRun: null });
  const vqBase = vqvaeCheckpoint(cfg.run);
  const { codes, model: vqvae, vqvaeId, dataset } = await loadOrEncodeCodes(cfg.run, vqBase, cfg, (s) => session.say(s), opts.signal);
  const { parts, start } = await priorStart(cfg, codes, session, resumeFrom);
  let loop: TrainLoop<PriorRow> | null = null;
  try {
    await priorHeader(parts, session, r, start, { base: vqBase, id: vqvaeId, dataset, model: vqvae });
    vqvae.dispose();
    const task = new PriorTask(parts, session.files);
    loop = new TrainLoop(session, task, cfg, start, r);
    const out = await loop.run();
    if (out.status === 'diverged') throw new DivergedError(out.message);
    if (out.status === 'interrupted') return { status: 'interrupted', step: out.step, dir, valid: task.lastValid };
    if (task.lastValid === null && task.validates) await loop.validateNow();
    const v = task.lastValid as PriorResult['valid'];
    const msg = `finished ${out.step} steps in ${formatDuration(loop.elapsed())}` + (v ? `; validation NLL ${v.bitsPerCode.toFixed(3)} bits/code, ${v.bitsPerDim.toFixed(4)} bits/dim` : '');
    session.say(msg);
    session.end('finished', out.step, cfg.steps, msg, session.files.latest()?.base ?? null);
    return { status: 'finished', step: out.step, dir, valid: v };
  } catch (e) {
    if (!(e instanceof DivergedError)) session.fail(e, loop?.step ?? start.step, cfg.steps, loop?.checkpoint ?? start.checkpoint);
    throw e;
  } finally {
    parts.opt.dispose();
    parts.model.dispose();
  }
}
