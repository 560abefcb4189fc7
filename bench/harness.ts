// Benchmark harness: a registry of cases, timing (GPU timestamps where the device has them, wall
// clock always), statistics, a printed table and JSON output. bench/run.ts is the CLI.
//
// Adding a family: write bench/<family>.ts exporting `benchCases: BenchCase[]` (see
// bench/matmul.ts) and add its path to MODULES in bench/run.ts. A case builds its inputs in
// `setup` and returns `run`, which records the GPU work of one repetition (and disposes what it
// made); `tfjs`, if given, builds the same work in tfjs-webgpu for `--vs tfjs`.
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import type { Capabilities } from '../engine/device.js';
import { MAX_TIMED_PASSES, rt } from '../engine/runtime.js';
import type { Tf } from './tfjs_common.js';

export interface Prepared {
  /** Records one repetition's GPU work (synchronously); the harness syncs and times it. */
  run: () => void;
  dispose: () => void;
}

export interface TfjsWork {
  /** One repetition in tfjs; the harness runs it in tf.tidy and waits for the GPU. */
  work: () => TfTensor | TfTensor[];
  dispose: () => void;
}

export interface BenchCase {
  name: string;
  /** Op family: matmul, conv2d, conv_transpose2d, vq, train_step, ... */
  family: string;
  params: Record<string, unknown>;
  /** Floating-point operations of one repetition (0 if not meaningful). */
  flops: number;
  /** Bytes one repetition must at least move (inputs read once, outputs written once). */
  bytes: number;
  /** Default repetitions and warm-ups (slow cases ask for fewer). */
  reps?: number;
  warmup?: number;
  /**
   * Runs per wall-clock sample, on a GPU and on a CPU device: each sample runs the case this
   * many times back to back (each run submitted, one sync at the end), as training runs its
   * steps, and records the time per run. Without it a wall sample is one run and a sync.
   */
  backToBack?: { gpu: number; cpu: number };
  /** Images one run processes (a training step: its batch), for images/s. */
  images?: number;
  setup: () => Prepared | Promise<Prepared>;
  /**
   * The kernel plan one repetition runs, as one line (engine describe* functions: describeConvPlan,
   * describeMatmulPlan, describeNearestPlan). Called after init: it may read rt().caps and flags().
   */
  plan?: () => string;
  /** Why this device cannot run the case (e.g. no shader-f16), or null; such cases are skipped with that line. */
  unavailable?: (caps: Capabilities) => string | null;
  tfjs?: (tf: Tf) => TfjsWork | Promise<TfjsWork>;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
}

export function stats(xs: number[]): Stats {
  if (xs.length === 0) return { median: NaN, min: NaN, max: NaN, q1: NaN, q3: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => {
    const i = (s.length - 1) * p;
    const lo = Math.floor(i);
    return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
  };
  return { median: q(0.5), min: s[0], max: s[s.length - 1], q1: q(0.25), q3: q(0.75) };
}

/** One JSON entry (the first seven fields are the documented format; the rest are extras). */
export interface BenchEntry {
  name: string;
  family: string;
  params: Record<string, unknown>;
  median_ms: number;
  gflops: number;
  gbps: number;
  vs: null | { name: string; median_ms: number; speedup: number };
  /** 'gpu': median_ms is GPU time from timestamp queries (Runtime.timeGpu); 'wall': wall clock. */
  timing: 'gpu' | 'wall';
  min_ms: number;
  max_ms: number;
  q1_ms: number;
  q3_ms: number;
  /**
   * Wall clock per run: of `back_to_back` runs with one sync at the end, divided by their
   * number (1: run + sync). What `vs.speedup` compares (tfjs: run + sync).
   */
  wall_ms: number;
  /** Runs per wall sample (BenchCase.backToBack, or 1). */
  back_to_back: number;
  /** Images per second of wall clock (BenchCase.images over wall_ms), or null. */
  images_per_s: number | null;
  /**
   * Pool bytes the case's first run needed at its peak, with the pool's free buffers dropped
   * before it: handed out plus released but not yet reusable (the device memory a step needs;
   * beside PyTorch's max_memory_allocated). Bytes held before the case's setup are not counted.
   */
  peak_bytes: number;
  /** The most pool bytes handed out at once during that run (the same baseline). */
  peak_live_bytes: number;
  reps: number;
  /** Back-to-back runs per GPU timing sample (median_ms is per run). */
  runs_per_sample: number;
  /** Each repetition's time (GPU where timing is 'gpu', else wall), in the order taken. */
  samples_ms: number[];
  /** The case's kernel plan (BenchCase.plan) where it has one. */
  plan?: string;
}

/** A case's plan line, or undefined where it has none (or planning it failed: said in the line). */
export function casePlan(c: BenchCase): string | undefined {
  if (!c.plan) return undefined;
  try {
    return c.plan();
  } catch (e) {
    return `(no plan: ${(e as Error).message})`;
  }
}

export interface RunOptions {
  reps?: number;
  warmup?: number;
  quick?: boolean;
  /** Back-to-back runs per wall sample for the cases that time back to back (their backToBack). */
  steps?: number;
  /** Also time the case in tfjs-webgpu. */
  tf?: Tf | null;
  timeTfjs?: (tf: Tf, work: () => TfTensor | TfTensor[], o: { warmup: number; reps: number }) => Promise<number[]>;
}

/** Length of one GPU timing sample and of the clock ramp before a case (discrete GPUs only). */
const GPU_SAMPLE_MS = 50;
const GPU_RAMP_MS = 200;

function repsFor(c: BenchCase, o: RunOptions): { reps: number; warmup: number } {
  if (o.reps !== undefined) return { reps: o.reps, warmup: o.warmup ?? 1 };
  const reps = c.reps ?? 10;
  if (o.quick) return { reps: Math.max(1, Math.min(3, Math.ceil(reps / 3))), warmup: o.warmup ?? 1 };
  return { reps, warmup: o.warmup ?? c.warmup ?? 2 };
}

/** A case set up for timing: warm it, take samples, then turn them into an entry. */
interface CaseRun {
  warm(): Promise<void>;
  /** One repetition: ours (wall, then GPU) and, with --vs tfjs, tfjs's. */
  sample(): Promise<void>;
  /** Disposes the case's data and returns its entry. */
  finish(): BenchEntry;
}

/** Runs per wall sample: `steps` or the case's own for this kind of device; 1 if it has none. */
export function backToBackRuns(c: Pick<BenchCase, 'backToBack'>, isCpu: boolean, steps?: number): number {
  if (!c.backToBack) return 1;
  return steps ?? (isCpu ? c.backToBack.cpu : c.backToBack.gpu);
}

async function startCase(c: BenchCase, o: RunOptions): Promise<CaseRun> {
  const { reps, warmup } = repsFor(c, o);
  const r = rt();
  const plan = casePlan(c);
  // the case's peak counts only what it holds: not other cases' data (--interleave) or caches
  const liveBefore = r.pool.stats().liveBytes;
  let peak = { held: NaN, live: NaN };
  const p = await c.setup();
  const theirs = o.tf && c.tfjs && o.timeTfjs ? await c.tfjs(o.tf) : null;
  // tfjs is timed run + sync, so a case compared with it is too
  const runsPerWall = theirs ? 1 : backToBackRuns(c, r.caps.isCpu, o.steps);
  const gpu: number[] = [];
  const wall: number[] = [];
  let perSample = 1;
  const tf: number[] = [];
  const dispose = () => {
    p.dispose();
    theirs?.dispose();
  };
  return {
    async warm() {
      // The first warm-up run (there is always one) measures the peak: free buffers dropped
      // first, so the pool holds only live data and what the run needs beyond it is allocated
      // during the run.
      await r.sync();
      r.pool.trim();
      r.pool.resetPeak();
      const s0 = r.pool.stats();
      const own = s0.liveBytes - liveBefore; // the case's data (weights, optimizer state, batch)
      const others = s0.liveBytes + s0.pooledBytes - own;
      p.run();
      await r.sync();
      const s = r.pool.stats();
      peak = { held: s.peakHeldBytes - others, live: s.peakLiveBytes - liveBefore };
      for (let i = 1; i < warmup; i++) {
        p.run();
        await r.sync();
      }
      // A discrete GPU drops its clocks within milliseconds of going idle (an H200 sat at
      // 345-735 MHz of 1980 between short, synced repetitions, which made them look 2-4x
      // slower). So there each GPU sample runs the case back to back for ~50 ms, after ~200 ms
      // of the same to ramp the clocks up. A CPU device has no such governor: one run per sample.
      if (!r.caps.isCpu && r.caps.timestampQuery && warmup > 0) {
        const t0 = performance.now();
        const passes0 = r.passCount;
        p.run();
        await r.sync();
        const est = Math.max(performance.now() - t0, 0.01);
        // A run submitted on its own opens at least one pass; timeGpu times MAX_TIMED_PASSES.
        const passesPerRun = Math.max(1, r.passCount - passes0);
        perSample = Math.max(1, Math.min(200, Math.ceil(GPU_SAMPLE_MS / est), Math.floor(MAX_TIMED_PASSES / passesPerRun)));
        for (let i = 0; i < Math.min(1000, Math.ceil(GPU_RAMP_MS / est)); i++) {
          p.run();
          r.flush();
        }
        await r.sync();
      }
      if (theirs) await o.timeTfjs!(o.tf!, theirs.work, { warmup, reps: 0 });
    },
    async sample() {
      const t0 = performance.now();
      for (let j = 0; j < runsPerWall; j++) {
        p.run();
        r.flush();
      }
      await r.sync();
      wall.push((performance.now() - t0) / runsPerWall);
      // Each run is submitted on its own, so its buffers return to the pool for the next one
      // (unsubmitted, a sample's outputs would pile up in fresh memory: slower, and not how
      // training runs).
      const g = await r.timeGpu(() => {
        for (let j = 0; j < perSample; j++) {
          p.run();
          r.flush();
        }
      });
      if (g !== null) gpu.push(g / perSample);
      if (theirs) tf.push(...(await o.timeTfjs!(o.tf!, theirs.work, { warmup: 0, reps: 1 })));
    },
    finish() {
      dispose();
      const useGpu = gpu.length === wall.length && wall.length > 0;
      const samples = useGpu ? gpu : wall;
      const s = stats(samples);
      const w = stats(wall);
      const vs = theirs ? { name: 'tfjs-webgpu', median_ms: stats(tf).median, speedup: stats(tf).median / w.median } : null;
      return {
        name: c.name,
        family: c.family,
        params: c.params,
        median_ms: s.median,
        gflops: c.flops / (s.median * 1e6),
        gbps: c.bytes / (s.median * 1e6),
        vs,
        timing: useGpu ? 'gpu' : 'wall',
        min_ms: s.min,
        max_ms: s.max,
        q1_ms: s.q1,
        q3_ms: s.q3,
        wall_ms: w.median,
        back_to_back: runsPerWall,
        images_per_s: c.images ? c.images / (w.median / 1e3) : null,
        peak_bytes: peak.held,
        peak_live_bytes: peak.live,
        reps: wall.length,
        runs_per_sample: perSample,
        samples_ms: samples,
        ...(plan !== undefined ? { plan } : {}),
      };
    },
  };
}

/** Runs one case: warm-up, then repetitions of ours (GPU + wall) interleaved with tfjs's. */
export async function runCase(c: BenchCase, o: RunOptions = {}): Promise<BenchEntry> {
  const run = await startCase(c, o);
  try {
    await run.warm();
    for (let i = 0; i < repsFor(c, o).reps; i++) await run.sample();
  } catch (e) {
    run.finish();
    throw e;
  }
  return run.finish();
}

/**
 * Runs the cases round-robin: all set up and warmed, then each round takes one sample of every
 * case (a case stops once it has its repetitions). A CPU device's speed can drift by more than
 * the differences being measured (lavapipe on a shared VM: 1.7x between minutes), and
 * interleaving puts every case through the same drift, so the cases compare fairly and
 * `pairedRatio` can compare them round by round. All cases hold their data at once.
 */
export async function runInterleaved(cases: BenchCase[], o: RunOptions = {}, progress?: (msg: string) => void): Promise<BenchEntry[]> {
  const runs: CaseRun[] = [];
  try {
    for (const c of cases) {
      progress?.(`  ${c.name} (setup) ...`);
      const run = await startCase(c, o);
      runs.push(run);
      await run.warm();
    }
    const reps = cases.map((c) => repsFor(c, o).reps);
    for (let round = 0; round < Math.max(...reps); round++) {
      progress?.(`  round ${round + 1} of ${Math.max(...reps)} ...`);
      for (let i = 0; i < runs.length; i++) if (round < reps[i]) await runs[i].sample();
    }
  } catch (e) {
    for (const run of runs) run.finish();
    throw e;
  }
  return runs.map((run) => run.finish());
}

/**
 * The median over rounds of a's sample over b's (both from runInterleaved, so round i of each
 * ran back to back), or NaN when they have no rounds in common.
 */
export function pairedRatio(a: BenchEntry, b: BenchEntry): number {
  const n = Math.min(a.samples_ms.length, b.samples_ms.length);
  if (n === 0) return NaN;
  return stats(Array.from({ length: n }, (_, i) => a.samples_ms[i] / b.samples_ms[i])).median;
}

/** Lines of a fixed-width table: the first column left-aligned, the rest right-aligned. */
function columns(head: string[], rows: string[][], rule: boolean): string[] {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(head), ...(rule ? [line(width.map((n) => '-'.repeat(n)))] : []), ...rows.map(line)];
}

/**
 * The weight gradient's time over the forward's, per layer and batch, from entries whose params
 * name a layer, a pass and a batch (the conv cases; both
 * passes do the same FLOPs, so this is the per-FLOP cost ratio; below 1 the weight gradient is
 * the faster one): of the medians, of the minimums and, where the entries were timed
 * round-robin (--interleave), the median over rounds of the per-round ratio, which drift of
 * the device's speed affects least. Null when no layer has both passes.
 */
export function formatWgradVsForward(entries: BenchEntry[], interleaved: boolean): string | null {
  const key = (e: BenchEntry) => `${e.family}|${e.params.layer}|${e.params.batch}`;
  const fwd = new Map(entries.filter((e) => e.params.pass === 'fwd').map((e) => [key(e), e]));
  const rows: string[][] = [];
  for (const w of entries.filter((e) => e.params.pass === 'wgrad')) {
    const f = fwd.get(key(w));
    if (!f) continue;
    rows.push([
      `${w.params.layer} b${w.params.batch}`,
      f.gflops.toFixed(2),
      w.gflops.toFixed(2),
      (w.median_ms / f.median_ms).toFixed(3),
      (w.min_ms / f.min_ms).toFixed(3),
      interleaved ? pairedRatio(w, f).toFixed(3) : '-',
    ]);
  }
  if (!rows.length) return null;
  const head = ['layer', 'fwd GFLOP/s', 'wgrad GFLOP/s', 'wgrad/fwd (medians)', '(minimums)', '(paired rounds)'];
  return ['weight gradient time over forward time (same FLOPs):', ...columns(head, rows, false)].join('\n');
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** A fixed-width table of entries. */
export function formatTable(entries: BenchEntry[]): string {
  const head = ['case', 'ms (median)', 'IQR ms', 'min-max ms', 'GFLOP/s', 'GB/s', 'wall ms', 'img/s', 'peak MiB', 'tfjs ms', 'tfjs GFLOP/s', 'speedup'];
  const rows = entries.map((e) => {
    const flops = e.gflops * e.median_ms * 1e6;
    return [
      e.name,
      `${f(e.median_ms, 2)} ${e.timing}`,
      `${f(e.q1_ms, 2)}-${f(e.q3_ms, 2)}`,
      `${f(e.min_ms, 2)}-${f(e.max_ms, 2)}`,
      f(e.gflops, 2),
      f(e.gbps, 2),
      `${f(e.wall_ms, 2)}${e.back_to_back > 1 ? ` (x${e.back_to_back})` : ''}`,
      e.images_per_s === null ? '-' : f(e.images_per_s, 1),
      f(e.peak_bytes / 2 ** 20, 1),
      e.vs ? f(e.vs.median_ms, 2) : '-',
      e.vs && flops > 0 ? f(flops / (e.vs.median_ms * 1e6), 2) : '-',
      e.vs ? `${f(e.vs.speedup, 2)}x` : '-',
    ];
  });
  return columns(head, rows, true).join('\n');
}

/** `case  plan` lines for the entries that carry a plan, or null when none does. */
export function formatPlans(entries: { name: string; plan?: string }[]): string | null {
  const rows = entries.filter((e) => e.plan !== undefined).map((e) => [e.name, e.plan!]);
  if (!rows.length) return null;
  const width = Math.max(4, ...rows.map((r) => r[0].length));
  return ['kernel plans:', ...rows.map(([n, p]) => `${n.padEnd(width)}  ${p}`)].join('\n');
}
