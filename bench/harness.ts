// Benchmark harness: a registry of cases, timing (GPU timestamps where the device has them, wall
// clock always), statistics, a printed table and JSON output. bench/run.ts is the CLI.
//
// Adding a family: write bench/<family>.ts exporting `benchCases: BenchCase[]` (see
// bench/matmul.ts) and add its path to MODULES in bench/run.ts. A case builds its inputs in
// `setup` and returns `run`, which records the GPU work of one repetition (and disposes what it
// made); `tfjs`, if given, builds the same work in tfjs-webgpu for `--vs tfjs`.
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import { MAX_TIMED_PASSES, rt } from '../engine/runtime.js';
import type { Tf } from './tfjs.js';

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
  setup: () => Prepared | Promise<Prepared>;
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
  /** 'gpu': median_ms is summed GPU pass time from timestamp queries; 'wall': wall clock. */
  timing: 'gpu' | 'wall';
  min_ms: number;
  max_ms: number;
  q1_ms: number;
  q3_ms: number;
  /** Wall clock of run + sync: what `vs.speedup` compares (tfjs is timed the same way). */
  wall_ms: number;
  reps: number;
  /** Back-to-back runs per GPU timing sample (median_ms is per run). */
  runs_per_sample: number;
}

export interface RunOptions {
  reps?: number;
  warmup?: number;
  quick?: boolean;
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

/** Runs one case: warm-up, then repetitions of ours (GPU + wall) interleaved with tfjs's. */
export async function runCase(c: BenchCase, o: RunOptions = {}): Promise<BenchEntry> {
  const { reps, warmup } = repsFor(c, o);
  const r = rt();
  const p = await c.setup();
  const theirs = o.tf && c.tfjs && o.timeTfjs ? await c.tfjs(o.tf) : null;
  const gpu: number[] = [];
  const wall: number[] = [];
  let perSample = 1;
  const tf: number[] = [];
  try {
    for (let i = 0; i < warmup; i++) {
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
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      p.run();
      await r.sync();
      wall.push(performance.now() - t0);
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
    }
  } finally {
    p.dispose();
    theirs?.dispose();
  }
  const useGpu = gpu.length === reps && reps > 0;
  const s = stats(useGpu ? gpu : wall);
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
    reps,
    runs_per_sample: perSample,
  };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** A fixed-width table of entries. */
export function formatTable(entries: BenchEntry[]): string {
  const head = ['case', 'ms (median)', 'IQR ms', 'min-max ms', 'GFLOP/s', 'GB/s', 'wall ms', 'tfjs ms', 'tfjs GFLOP/s', 'speedup'];
  const rows = entries.map((e) => {
    const flops = e.gflops * e.median_ms * 1e6;
    return [
      e.name,
      `${f(e.median_ms, 2)} ${e.timing}`,
      `${f(e.q1_ms, 2)}-${f(e.q3_ms, 2)}`,
      `${f(e.min_ms, 2)}-${f(e.max_ms, 2)}`,
      f(e.gflops, 2),
      f(e.gbps, 2),
      f(e.wall_ms, 2),
      e.vs ? f(e.vs.median_ms, 2) : '-',
      e.vs && flops > 0 ? f(flops / (e.vs.median_ms * 1e6), 2) : '-',
      e.vs ? `${f(e.vs.speedup, 2)}x` : '-',
    ];
  });
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(head), line(width.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
