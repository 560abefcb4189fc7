// The trainer's loop against the GPU: does the GPU ever wait for the CPU between steps?
//   npx tsx bench/train_loop.ts [--steps 20] [--warmup 8] [--batch 8] [--trials 3] [--log-every N] [--images N] [--json FILE]
// runs the quick preset's model at batch 8 through train() itself (loader, uint8 upload, step,
// metrics ring, logging at the preset's cadence) and takes the wall time of `steps` back-to-back
// steps, from the GPU finishing the step before them to the GPU finishing the last (queue
// completion observed without waiting on it), against the summed GPU time of as many steps of
// the same model recorded the same way, each timed alone (Runtime.timeGpu). The goal: wall
// within 5% of the GPU time, also on a CPU device. It also gives the wall time of those steps
// recorded back to back with nothing else (no data, no metrics, one sync at the end): on a CPU
// device, where recording competes with the device's threads for the cores, that is the loop's
// floor. `--log-every 1` writes a train row every step (the rows still come from the ring).
// `--images N` trains on N synthetic images (rendered once, then memoised): without it every
// batch of the first epoch renders fresh faces on the CPU, which a CPU device's threads feel.
//
// benchCases: 'train_loop.quick.b8', one step as the loop records it (the batch written as
// uint8, widened on the GPU, forward, backward, Adam), for `npm run bench`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Adam } from '../engine/optim.js';
import { init } from '../engine/node.js';
import { type Runtime } from '../engine/runtime.js';
import { tidy } from '../engine/tensor.js';
import { ByteInput } from '../engine/upload.js';
import { CodeUsage } from '../engine/vq.js';
import { VqVae } from '../model/vqvae.js';
import { type TrainConfig, QUICK_PRESET, modelConfig, resolveTrainConfig } from '../train/config.js';
import { syntheticFacesU8 } from '../train/data/synthetic.js';
import { imageByteTable, stepGradients, stepOptimizer } from '../train/step.js';
import { train } from '../train/trainer.js';
import type { BenchCase, Prepared } from './harness.js';
import { stepFlops } from './train_step.js';

/** The quick preset at batch `batch`, `steps` steps, with nothing but logging (every `logEvery`, default the preset's) inside them. */
function loopConfig(runsDir: string, steps: number, batch: number, logEvery = QUICK_PRESET.logEvery, trainSubset: number | null = null): TrainConfig {
  const never = steps + 1;
  const given = { ...QUICK_PRESET, preset: 'quick' as const, runsDir, name: 'loop', batchSize: batch, steps, logEvery, trainSubset, valEvery: never, checkpointEvery: never, gridEvery: never, valImages: 8, evalImages: 8 };
  return resolveTrainConfig(given, { isCpu: true }).config;
}

/** One trainer step as the loop records it, on `batch` uint8 images. */
function prepareStep(cfg: TrainConfig): Prepared {
  const mcfg = modelConfig(cfg);
  const model = new VqVae(mcfg, { seed: cfg.seed });
  const opt = new Adam(model.parameters(), { lr: cfg.lr });
  const usage = new CodeUsage(mcfg.codebookSize);
  const bytes = syntheticFacesU8(cfg.batchSize, 0);
  const input = new ByteInput(bytes.length, imageByteTable());
  const shape = [cfg.batchSize, 3, 64, 64];
  return {
    run: () => {
      input.write(bytes);
      tidy(() => stepGradients(model, input.widen(shape), cfg.batchSize, (o) => usage.update(o.counts)));
      stepOptimizer(opt);
    },
    dispose: () => {
      input.dispose();
      usage.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

const QUICK_B8 = loopConfig('runs', 1, 8); // the config only: nothing is written

export const benchCases: BenchCase[] = [
  {
    name: 'train_loop.quick.b8',
    family: 'train_loop',
    params: { model: 'quick', batch: 8, upload: 'uint8' },
    flops: stepFlops(modelConfig(QUICK_B8), 8),
    bytes: 8 * 3 * 64 * 64,
    reps: 5,
    warmup: 1,
    setup: () => prepareStep(QUICK_B8),
  },
];

export interface LoopTiming {
  steps: number;
  batch: number;
  /**
   * Per trial: wall time of the steps in the loop, the summed GPU time of as many steps timed
   * alone, and the wall time of as many steps recorded back to back with nothing else.
   */
  trials: { wallMs: number; gpuMs: number; ratio: number; aloneMs: number }[];
  /** The median trial's wall / GPU: 1 when the GPU never waits. */
  ratio: number;
  device: string;
}

/** Wall time of `steps` back-to-back steps of train() after `warmup` steps (see the header). */
async function loopWall(r: Runtime, runsDir: string, steps: number, warmup: number, batch: number, logEvery?: number, images?: number): Promise<number> {
  const first = warmup;
  const last = warmup + steps;
  const done: Record<number, number> = {};
  const gpuDone: Promise<void>[] = [];
  const onStep = (step: number) => {
    if (step !== first && step !== last) return;
    gpuDone.push(r.device.queue.onSubmittedWorkDone().then(() => void (done[step] = performance.now())));
  };
  await train(loopConfig(runsDir, last, batch, logEvery, images ?? null), { progress: 'none', print: () => {}, onStep });
  await Promise.all(gpuDone);
  return done[last] - done[first];
}

/**
 * The same model's steps with nothing else: `steps` steps recorded back to back and one sync at
 * the end (`ms`: its wall time), and each step timed alone (`gpuMs`: the summed GPU time).
 */
async function stepsAlone(r: Runtime, steps: number, warmup: number, batch: number): Promise<{ ms: number; gpuMs: number }> {
  const p = prepareStep(loopConfig('runs', 1, batch)); // the config only: nothing is written
  try {
    for (let i = 0; i < warmup; i++) await r.timeGpu(p.run);
    let gpuMs = 0;
    for (let i = 0; i < steps; i++) {
      const ms = await r.timeGpu(p.run);
      if (ms === null) throw new Error('train_loop: this device has no timestamp queries; no GPU time to compare with');
      gpuMs += ms;
    }
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      p.run();
      r.flush();
    }
    await r.sync();
    return { ms: performance.now() - t0, gpuMs };
  } finally {
    p.dispose();
  }
}

/**
 * `trials` alternations of the loop's wall time and the GPU time of as many steps (a CPU
 * device shares its cores with everything else on the machine: the median trial is reported).
 */
export async function measureTrainLoop(opts: { steps?: number; warmup?: number; batch?: number; trials?: number; logEvery?: number; images?: number } = {}): Promise<LoopTiming> {
  const steps = opts.steps ?? 20;
  const warmup = opts.warmup ?? 8;
  const batch = opts.batch ?? 8;
  const r = await init();
  const trials: LoopTiming['trials'] = [];
  for (let i = 0; i < (opts.trials ?? 3); i++) {
    const runsDir = mkdtempSync(join(tmpdir(), 'train-loop-'));
    try {
      const wallMs = await loopWall(r, runsDir, steps, warmup, batch, opts.logEvery, opts.images);
      const alone = await stepsAlone(r, steps, 2, batch);
      trials.push({ wallMs, gpuMs: alone.gpuMs, ratio: wallMs / alone.gpuMs, aloneMs: alone.ms });
    } finally {
      rmSync(runsDir, { recursive: true, force: true });
    }
  }
  const sorted = trials.map((t) => t.ratio).sort((a, b) => a - b);
  return { steps, batch, trials, ratio: sorted[Math.floor((sorted.length - 1) / 2)], device: r.caps.description };
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`train_loop: ${name} needs a value`);
  return v;
}

async function main(argv: string[]): Promise<void> {
  const num = (name: string) => {
    const v = flag(argv, name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`train_loop: ${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const t = await measureTrainLoop({ steps: num('--steps'), warmup: num('--warmup'), batch: num('--batch'), trials: num('--trials'), logEvery: num('--log-every'), images: num('--images') });
  console.log(`${t.device}: ${t.steps} back-to-back steps at batch ${t.batch}, logging every ${num('--log-every') ?? QUICK_PRESET.logEvery}`);
  for (const x of t.trials) {
    console.log(`  wall ${x.wallMs.toFixed(1)} ms, GPU ${x.gpuMs.toFixed(1)} ms, wall/GPU ${x.ratio.toFixed(3)}; the steps alone back to back ${x.aloneMs.toFixed(1)} ms (wall/alone ${(x.wallMs / x.aloneMs).toFixed(3)})`);
  }
  console.log(`median wall/GPU ${t.ratio.toFixed(3)}`);
  const json = flag(argv, '--json');
  if (json) writeFileSync(json, JSON.stringify(t, null, 2) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
