// The studio's engine Worker: every GPU step runs here, so the page's main thread only draws.
// One request runs at a time (they share the device); training runs in the background and
// answers pause/resume/stop and timing requests between steps, refusing other GPU work.
import { init, memory, noGrad, rt, tensor, tidy, keep, currentRuntime, type Tensor } from '../../engine/index.js';
import { Adam } from '../../engine/optim.js';
import { Rng } from '../../engine/random.js';
import { CodeUsage } from '../../engine/vq.js';
import { encodeCheckpoint, modelFromCheckpointBytes } from '../../model/checkpoint.js';
import { resolveConfig } from '../../model/config.js';
import { countParams } from '../../model/params.js';
import type { PixelCnn } from '../../model/pixelcnn.js';
import { VqVae } from '../../model/vqvae.js';
import { IMAGE_SIZE, IMAGE_VALUES, type PreprocessMode, type ResizeFilter, compositeOverBlack, preprocessImage, u8ToFloat } from '../../train/data/preprocess.js';
import { SYNTHETIC_TRAIN_IMAGES, syntheticImages } from './synthetic.js';
import { isPriorCheckpoint, priorFromBytes } from '../../train/prior_bytes.js';
import { sampleCodes } from '../../train/sample.js';
import { ScalarLog } from '../../train/scalars.js';
import { lrAt, stepGradients, stepOptimizer, trainStep } from '../../train/step.js';
import type { DecodedImages, DeviceInfo, Event, ModelInfo, PriorInfo, Reconstruction, Reply, Request, StepTiming, TrainRow, TrainSettings } from './protocol.js';

const post = (e: Event, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(e, transfer);

let model: VqVae | null = null;
let modelInfo: ModelInfo | null = null;
let prior: PixelCnn | null = null;
let training: Training | null = null;

/** An error the page shows as it is; `name` picks the hint (e.g. OutOfMemory). */
class StudioError extends Error {
  constructor(message: string, override readonly name = 'StudioError') {
    super(message);
  }
}

function needModel(): VqVae {
  if (!model) throw new StudioError('No model is loaded: open a checkpoint on the Run panel, or train one on the Train panel.');
  return model;
}

function notTraining(): void {
  if (training) throw new StudioError('Training is running: pause is not enough, stop it first (the trained model then becomes the loaded one).');
}

const LIMIT_NAMES = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxTextureDimension2D',
];

async function initDevice(): Promise<DeviceInfo> {
  const r = currentRuntime() ?? (await init({ onDeviceLost: (message) => post({ event: 'deviceLost', message }) }));
  const limits: Record<string, number> = {};
  for (const n of LIMIT_NAMES) limits[n] = (r.device.limits as unknown as Record<string, number>)[n];
  const c = r.caps;
  return { description: c.description, vendor: c.vendor, isCpu: c.isCpu, timestampQuery: c.timestampQuery, defaultLimits: c.defaultLimits, features: c.features, limits, liveBytes: memory().liveBytes };
}

function describeModel(m: VqVae, name: string, step: number): ModelInfo {
  return { name, step, config: m.config, parameters: countParams(m.config), latent: m.latentSize(IMAGE_SIZE, IMAGE_SIZE)[0] };
}

async function loadModel(bytes: ArrayBuffer, name: string): Promise<ModelInfo> {
  notTraining();
  await initDevice();
  const u8 = new Uint8Array(bytes);
  let isPrior = false;
  try {
    isPrior = isPriorCheckpoint(u8, name);
  } catch {
    // not safetensors at all: the checkpoint loader says why below
  }
  if (isPrior) throw new StudioError(`${name}: this is a PixelCNN prior checkpoint, not a VQ-VAE: open it as the prior.`, 'CheckpointError');
  const { model: m, info } = await modelFromCheckpointBytes(u8, name, { onWarning: () => {} });
  model?.dispose();
  model = m;
  modelInfo = describeModel(m, name, info.step);
  if (prior && prior.config.numCodes !== m.config.codebookSize) {
    prior.dispose();
    prior = null;
  }
  return modelInfo;
}

async function loadPrior(bytes: ArrayBuffer, name: string): Promise<PriorInfo> {
  notTraining();
  await initDevice();
  const m = needModel();
  const p = priorFromBytes(new Uint8Array(bytes), name);
  if (p.config.numCodes !== m.config.codebookSize) {
    p.model.dispose();
    throw new StudioError(`${name}: this prior draws from ${p.config.numCodes} codes but the loaded VQ-VAE has ${m.config.codebookSize}: it belongs to another model.`, 'CheckpointError');
  }
  prior?.dispose();
  prior = p.model;
  return { name, step: p.step, numCodes: p.config.numCodes, width: p.config.width, layers: p.config.layers };
}

/** Decodes with the browser (any format it reads), then preprocesses as the trainer does. */
async function decodeFiles(files: File[], pre: { mode: string; filter: string }): Promise<DecodedImages> {
  const names: string[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const out: Float32Array[] = [];
  const planar = new Uint8Array(IMAGE_VALUES);
  for (const f of files) {
    const name = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    try {
      const bmp = await createImageBitmap(f, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
      const canvas = new OffscreenCanvas(bmp.width, bmp.height);
      const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
      ctx.drawImage(bmp, 0, 0);
      bmp.close();
      const data = new Uint8Array(ctx.getImageData(0, 0, canvas.width, canvas.height).data.buffer);
      compositeOverBlack(data);
      preprocessImage({ width: canvas.width, height: canvas.height, data }, { mode: pre.mode as PreprocessMode, filter: pre.filter as ResizeFilter }, planar);
      out.push(u8ToFloat(planar));
      names.push(name);
    } catch (e) {
      skipped.push({ name, reason: (e as Error).message || String(e) });
    }
  }
  const images = new Float32Array(out.length * IMAGE_VALUES);
  out.forEach((x, i) => images.set(x, i * IMAGE_VALUES));
  return { images, names, skipped };
}

async function reconstruct(images: Float32Array): Promise<Reconstruction> {
  notTraining();
  const m = needModel();
  const t0 = performance.now();
  const n = images.length / IMAGE_VALUES;
  const L = modelInfo!.latent;
  const xHat = new Float32Array(images.length);
  const codes = new Uint32Array(n * L * L);
  const B = 16;
  for (let s = 0; s < n; s += B) {
    const b = Math.min(B, n - s);
    const o = tidy(() => noGrad(() => {
      const f = m.forward(tensor(images.subarray(s * IMAGE_VALUES, (s + b) * IMAGE_VALUES), [b, 3, IMAGE_SIZE, IMAGE_SIZE]), { train: false });
      return { xHat: f.xHat, indices: f.indices };
    }));
    xHat.set((await o.xHat.read()) as Float32Array, s * IMAGE_VALUES);
    codes.set((await o.indices.read()) as Uint32Array, s * L * L);
    o.xHat.dispose();
    o.indices.dispose();
  }
  const mse: number[] = [];
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = i * IMAGE_VALUES; j < (i + 1) * IMAGE_VALUES; j++) acc += (xHat[j] - images[j]) ** 2;
    mse.push(acc / IMAGE_VALUES);
  }
  const counts = new Array<number>(m.config.codebookSize).fill(0);
  for (const c of codes) counts[c]++;
  return { xHat, codes, mse, counts, ms: performance.now() - t0 };
}

async function decodeCodes(codes: Uint32Array, count: number): Promise<Float32Array> {
  notTraining();
  const m = needModel();
  const L = modelInfo!.latent;
  const K = m.config.codebookSize;
  for (const c of codes) if (c >= K) throw new StudioError(`code ${c} does not exist: this codebook has codes 0 to ${K - 1}`);
  const img = tidy(() => m.decode(tensor(codes, [count, L, L], 'u32')));
  const v = (await img.read()) as Float32Array;
  img.dispose();
  return v;
}

/** Each code alone: a latent map holding only that code, decoded. */
async function atlas(): Promise<Float32Array> {
  notTraining();
  const m = needModel();
  const K = m.config.codebookSize;
  const L = modelInfo!.latent;
  const out = new Float32Array(K * IMAGE_VALUES);
  const B = 32;
  for (let s = 0; s < K; s += B) {
    const b = Math.min(B, K - s);
    const codes = new Uint32Array(b * L * L);
    for (let i = 0; i < b; i++) codes.fill(s + i, i * L * L, (i + 1) * L * L);
    out.set(await decodeCodes(codes, b), s * IMAGE_VALUES);
  }
  return out;
}

async function sample(count: number, temperature: number, seed: number): Promise<{ codes: Uint32Array; images: Float32Array; ms: number }> {
  notTraining();
  const m = needModel();
  if (!prior) throw new StudioError('No prior is loaded: open a PixelCNN prior checkpoint (npm run prior makes one) on the Run panel.');
  const L = modelInfo!.latent;
  const t0 = performance.now();
  let rowStart = t0;
  const pending: Promise<void>[] = [];
  const codes = await sampleCodes(prior, count, L, L, {
    temperature,
    seed,
    onRow: (rowsDone, rows, snapshot) => {
      const now = performance.now();
      const msPerRow = now - rowStart;
      rowStart = now;
      // Rows not drawn yet hold code 0; the page greys them out. The decode is recorded now
      // (synchronously) and read back while the next row samples.
      const img = tidy(() => m.decode(tensor(snapshot, [count, L, L], 'u32')));
      pending.push(
        img.read().then((v) => {
          img.dispose();
          const images = v as Float32Array;
          post({ event: 'sampleRow', rowsDone, rows, msPerRow, images, codes: snapshot }, [images.buffer, snapshot.buffer]);
        }),
      );
    },
  });
  await Promise.all(pending);
  const images = await decodeCodes(codes, count);
  return { codes, images, ms: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------------
// Training

const FIELDS = ['loss', 'recon', 'codebook', 'commitment', 'perplexity'] as const;

class Training {
  paused = false;
  stopRequested = false;
  timeNext = false;
  private resumeWaiter: (() => void) | null = null;

  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.resumeWaiter?.();
    this.resumeWaiter = null;
  }
  stop(): void {
    this.stopRequested = true;
    this.resume();
  }
  waitResume(): Promise<void> {
    return new Promise((ok) => (this.resumeWaiter = ok));
  }
}

function oomHint(e: unknown): Error {
  const msg = (e as Error).message ?? String(e);
  if (/out of memory|OutOfMemory|exceeds the (max|limit)|maxBufferSize|maxStorageBufferBindingSize|Failed to allocate|allocation/i.test(msg)) {
    return new StudioError(`Out of GPU memory (or over a GPU buffer limit): ${msg}. Try a smaller batch size (or a smaller model).`, 'OutOfMemory');
  }
  return e as Error;
}

async function train(s: TrainSettings): Promise<void> {
  notTraining();
  const r = rt();
  const cfg = resolveConfig({ hidden: s.hidden, residualHidden: s.residualHidden, residualBlocks: s.residualBlocks, codebookSize: s.codebookSize, embeddingDim: s.embeddingDim, beta: s.beta, ema: s.ema });
  const n = s.source === 'synthetic' ? SYNTHETIC_TRAIN_IMAGES : (s.images?.length ?? 0) / IMAGE_VALUES;
  if (n < 1) throw new StudioError('No training images: drop a folder of images first, or train on the synthetic faces.');
  for (const [k, v] of [['batch size', s.batchSize], ['steps', s.steps], ['log every', s.logEvery]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new StudioError(`${k} must be a positive integer, got ${v}`);
  }
  if (!(s.lr > 0 && Number.isFinite(s.lr))) throw new StudioError(`the learning rate must be positive, got ${s.lr}`);
  // Before allocating: the largest activation (the input or the 32x32 feature map of the first
  // conv) must fit one GPU buffer, or the device refuses it deep inside a step.
  const limit = Math.min(rt().device.limits.maxBufferSize, rt().device.limits.maxStorageBufferBindingSize);
  const largest = s.batchSize * Math.max(IMAGE_VALUES, cfg.hidden * 32 * 32) * 4;
  if (largest > limit) {
    throw new StudioError(
      `Out of GPU memory: a batch of ${s.batchSize} needs a ${(largest / 2 ** 20).toFixed(0)} MiB buffer, over this device's ${(limit / 2 ** 20).toFixed(0)} MiB limit. Try a smaller batch size (at most ${Math.floor(limit / (largest / s.batchSize))} here).`,
      'OutOfMemory',
    );
  }
  const tr = new Training();
  training = tr;
  let m: VqVae | null = null;
  let opt: Adam | null = null;
  let log: ScalarLog | null = null;
  let usage: CodeUsage | null = null;
  const bs = s.batchSize;
  let step = 0;
  let state: 'stopped' | 'finished' | 'failed' = 'finished';
  let message: string | undefined;
  post({ event: 'trainState', state: 'running', step });
  try {
    const mm = (m = new VqVae(cfg, { seed: s.seed }));
    const oo = (opt = new Adam(mm.parameters(), { lr: s.lr }));
    log = new ScalarLog(FIELDS, s.logEvery);
    usage = new CodeUsage(cfg.codebookSize);
    const batch = new Float32Array(bs * IMAGE_VALUES);
    const rng = new Rng(s.seed);
    let perm = rng.permutation(n);
    let pos = 0;
    let trainSeconds = 0;
    let lastStepMs = 0;
    let intervalStart = performance.now();
    let intervalSteps = 0;
    const record = (o: { loss: Tensor; recon: Tensor; codebookLoss: Tensor; commitmentLoss: Tensor; perplexity: Tensor; counts: Tensor }) => {
      log!.record([o.loss, o.recon, o.codebookLoss, o.commitmentLoss, o.perplexity]);
      usage!.update(o.counts);
    };
    while (step < s.steps) {
      if (tr.paused) {
        post({ event: 'trainState', state: 'paused', step });
        await tr.waitResume();
        if (!tr.stopRequested) post({ event: 'trainState', state: 'running', step });
        intervalStart = performance.now();
        intervalSteps = 0;
      }
      if (tr.stopRequested) {
        state = 'stopped';
        break;
      }
      // the next batch: epochs over seeded permutations of the training images
      const idx = new Uint32Array(bs);
      for (let i = 0; i < bs; i++) {
        if (pos === n) {
          perm = rng.permutation(n);
          pos = 0;
        }
        idx[i] = perm[pos++];
      }
      if (s.source === 'synthetic') batch.set(syntheticImages(idx));
      else for (let i = 0; i < bs; i++) batch.set(s.images!.subarray(idx[i] * IMAGE_VALUES, (idx[i] + 1) * IMAGE_VALUES), i * IMAGE_VALUES);
      oo.lr = lrAt({ lr: s.lr, lrSchedule: 'constant', steps: s.steps }, step);
      const t0 = performance.now();
      if (tr.timeNext) {
        tr.timeNext = false;
        const grads = await r.profileGpu(() => stepGradients(mm, batch, bs, record));
        const adam = await r.profileGpu(() => stepOptimizer(oo));
        post({ event: 'stepTiming', timing: timing([{ name: 'forward + backward (encoder, quantiser, decoder, their gradients)', profile: grads }, { name: 'Adam update', profile: adam }], performance.now() - t0, bs) });
      } else {
        trainStep(mm, oo, batch, bs, record);
        await r.sync();
      }
      lastStepMs = performance.now() - t0;
      trainSeconds += lastStepMs / 1000;
      step++;
      intervalSteps++;
      if (step === 3) tr.timeNext = true; // a warm step for the Device panel
      if (step % s.logEvery === 0 || step === s.steps) {
        const k = log.count;
        const rows = await log.read();
        const usedT = usage.used();
        const used = await usedT.item();
        usedT.dispose();
        usage.reset();
        const mean = (f: (typeof FIELDS)[number]) => rows.reduce((a, row) => a + row[f], 0) / k;
        if (!Number.isFinite(mean('loss'))) {
          state = 'failed';
          message = `the loss became ${mean('loss')} near step ${step}: try a lower learning rate than ${s.lr}`;
          break;
        }
        const seconds = (performance.now() - intervalStart) / 1000;
        const ips = (intervalSteps * bs) / Math.max(seconds, 1e-9);
        intervalStart = performance.now();
        intervalSteps = 0;
        const row: TrainRow = {
          step,
          loss: mean('loss'),
          recon_mse: mean('recon'),
          perplexity: mean('perplexity'),
          codebook_usage: used,
          images_per_s: ips,
          elapsed_s: trainSeconds,
          eta_s: ((s.steps - step) * bs) / Math.max(ips, 1e-9),
          step_ms: lastStepMs,
        };
        post({ event: 'trainRow', row });
      }
    }
  } catch (e) {
    state = 'failed';
    message = oomHint(e).message;
  } finally {
    log?.dispose();
    usage?.dispose();
    opt?.dispose();
    training = null;
  }
  if (!m) {
    // nothing was built
  } else if (state === 'failed' && step === 0) {
    m.dispose();
  } else {
    model?.dispose();
    model = m;
    modelInfo = describeModel(m, `trained in this tab (${step} steps)`, step);
    if (prior && prior.config.numCodes !== cfg.codebookSize) {
      prior.dispose();
      prior = null;
    }
  }
  post({ event: 'trainState', state, step, message, model: modelInfo ?? undefined });
}

type Profile = { kernel: string; ms: number; count: number }[] | null;

/** A phase's GPU time: the sum of its kernels' (null without timestamp queries). */
const phaseMs = (p: Profile) => (p ? p.reduce((s, k) => s + k.ms, 0) : null);

/** The phases' kernels merged by name, slowest first. */
function mergeProfiles(ps: Profile[]): Profile {
  if (ps.some((p) => p === null)) return null;
  const by = new Map<string, { kernel: string; ms: number; count: number }>();
  for (const k of ps.flatMap((p) => p!)) {
    const e = by.get(k.kernel) ?? { kernel: k.kernel, ms: 0, count: 0 };
    e.ms += k.ms;
    e.count += k.count;
    by.set(k.kernel, e);
  }
  return [...by.values()].sort((a, b) => b.ms - a.ms);
}

function timing(phases: { name: string; profile: Profile }[], wallMs: number, batchSize: number): StepTiming {
  const kernels = mergeProfiles(phases.map((p) => p.profile));
  const ms = (kernels ?? []).map((k) => k.ms).filter((x) => x > 0);
  const quantised = ms.length > 0 && ms.every((x) => Math.abs(x * 10 - Math.round(x * 10)) < 1e-6);
  return { phases: phases.map((p) => ({ name: p.name, ms: phaseMs(p.profile) })), kernels, quantised, wallMs, batchSize };
}

/** The loaded model's inference on a batch of synthetic faces, timed (outside training). */
async function timeInference(batchSize: number): Promise<StepTiming> {
  notTraining();
  const m = needModel();
  const r = rt();
  const idx = Uint32Array.from({ length: batchSize }, (_, i) => SYNTHETIC_TRAIN_IMAGES + i);
  const x = keep(tensor(syntheticImages(idx), [batchSize, 3, IMAGE_SIZE, IMAGE_SIZE]));
  const t0 = performance.now();
  let codes: Tensor | null = null;
  try {
    const enc = await r.profileGpu(() => {
      codes = keep(tidy(() => m.encode(x)));
    });
    const dec = await r.profileGpu(() => {
      tidy(() => {
        m.decode(codes!);
      });
    });
    return timing([{ name: 'encode + quantise (no gradients)', profile: enc }, { name: 'decode', profile: dec }], performance.now() - t0, batchSize);
  } finally {
    x.dispose();
    (codes as Tensor | null)?.dispose();
  }
}

async function exportModel(): Promise<{ bytes: Uint8Array; step: number }> {
  notTraining();
  const m = needModel();
  const { model: bytes } = await encodeCheckpoint(m, { step: modelInfo!.step });
  return { bytes, step: modelInfo!.step };
}

// ---------------------------------------------------------------------------------------------

async function handle(req: Request): Promise<{ result: unknown; transfer?: Transferable[] }> {
  switch (req.type) {
    case 'init':
      return { result: await initDevice() };
    case 'loadModel':
      return { result: await loadModel(req.bytes, req.name) };
    case 'loadPrior':
      return { result: await loadPrior(req.bytes, req.name) };
    case 'decodeFiles': {
      const d = await decodeFiles(req.files, req.preprocess);
      return { result: d, transfer: [d.images.buffer] };
    }
    case 'synthetic': {
      const images = syntheticImages(Uint32Array.from({ length: req.count }, (_, i) => req.start + i));
      return { result: images, transfer: [images.buffer] };
    }
    case 'reconstruct': {
      const r = await reconstruct(req.images);
      return { result: r, transfer: [r.xHat.buffer, r.codes.buffer] };
    }
    case 'decodeCodes': {
      const v = await decodeCodes(req.codes, req.count);
      return { result: v, transfer: [v.buffer] };
    }
    case 'atlas': {
      const v = await atlas();
      return { result: v, transfer: [v.buffer] };
    }
    case 'sample': {
      const s = await sample(req.count, req.temperature, req.seed);
      return { result: s, transfer: [s.images.buffer, s.codes.buffer] };
    }
    case 'train':
      await initDevice();
      // runs in the background; progress and the end come as events
      void train(req.settings).catch((e) => post({ event: 'trainState', state: 'failed', step: 0, message: oomHint(e).message }));
      return { result: null };
    case 'exportModel': {
      const e = await exportModel();
      return { result: e, transfer: [e.bytes.buffer] };
    }
    case 'timeStep':
      return { result: await timeInference(req.batchSize) };
    case 'loseDevice':
      // for tests and for trying the recovery path: a destroy the engine did not ask for is a loss
      rt().device.destroy();
      return { result: null };
    case 'trainControl':
      throw new StudioError('internal: trainControl is handled on arrival');
  }
}

let queue: Promise<void> = Promise.resolve();

self.onmessage = (ev: MessageEvent<{ id: number; req: Request }>) => {
  const { id, req } = ev.data;
  const reply = (r: Reply, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(r, transfer);
  // Control messages act at once, between training steps, not after queued work.
  if (req.type === 'trainControl') {
    if (!training) return reply({ id, ok: false, error: { name: 'StudioError', message: 'No training is running.' } });
    if (req.action === 'pause') training.pause();
    else if (req.action === 'resume') training.resume();
    else training.stop();
    return reply({ id, ok: true, result: null });
  }
  if (req.type === 'timeStep' && training) {
    training.timeNext = true;
    return reply({ id, ok: true, result: null });
  }
  queue = queue.then(async () => {
    try {
      const { result, transfer } = await handle(req);
      reply({ id, ok: true, result }, transfer);
    } catch (e) {
      const err = oomHint(e);
      reply({ id, ok: false, error: { name: err.name, message: err.message } });
    }
  });
};
