// The seed's hyperparameter sweep (K in 128/256/512, beta in 0.25/0.75/1.25/1.75, lr in
// 1e-3/1e-4/1e-5; any subset), one run folder per setting under a sweep folder, sharding for
// job arrays (SLURM, Kubernetes indexed jobs), and the summary: a table (CSV and Markdown)
// and overlaid loss and perplexity curves per varied parameter, like the seed's Figures 2-9.
// Under a scheduler: a task locks each run folder it trains (runlock.ts), skips finished runs,
// resumes stopped ones, and any task may merge the summary at any time (atomic writes).
import { existsSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { type GivenConfig, type TrainConfig, formatLr, readConfigFile, resolveTrainConfig } from './config.js';

export { formatLr };
import { type MetricRow, readMetrics } from './metrics.js';
import { type ChartSpec, PALETTE, writeCharts } from './plot.js';
import type { ProgressMode } from './progress.js';
import { RunFiles, type RunStatus, readJson } from './runfiles.js';
import { type LockOwner, RunLock, describeOwner } from './runlock.js';
import { type TrainResult, train } from './trainer.js';

export interface SweepGrid {
  codebookSize: number[];
  beta: number[];
  lr: number[];
}

/** The seed's grid: 3 x 4 x 3 = 36 settings. */
export const SEED_GRID: SweepGrid = {
  codebookSize: [128, 256, 512],
  beta: [0.25, 0.75, 1.25, 1.75],
  lr: [1e-3, 1e-4, 1e-5],
};

export interface SweepSetting {
  codebookSize: number;
  beta: number;
  lr: number;
  name: string;
}

export function settingName(s: Omit<SweepSetting, 'name'>): string {
  return `K${s.codebookSize}-beta${s.beta}-lr${formatLr(s.lr)}`;
}

/** Every combination, K slowest and lr fastest. */
export function expandGrid(grid: SweepGrid): SweepSetting[] {
  const out: SweepSetting[] = [];
  for (const codebookSize of grid.codebookSize) {
    for (const beta of grid.beta) {
      for (const lr of grid.lr) out.push({ codebookSize, beta, lr, name: settingName({ codebookSize, beta, lr }) });
    }
  }
  return out;
}

export interface Shard {
  index: number;
  count: number;
  /** Where it came from, for messages. */
  source: string;
}

/**
 * The shard to run: `--shard i/n` (0-based i), else SLURM_ARRAY_TASK_ID (minus
 * SLURM_ARRAY_TASK_MIN) of SLURM_ARRAY_TASK_COUNT, else a Kubernetes indexed job's
 * JOB_COMPLETION_INDEX of `shards` (--shards or SWEEP_SHARDS), else everything.
 */
export function resolveShard(spec: string | undefined, env: NodeJS.ProcessEnv, shards?: number): Shard {
  const check = (index: number, count: number, source: string): Shard => {
    if (!Number.isInteger(count) || count < 1) throw new Error(`${source}: the shard count must be a positive integer, got ${count}`);
    if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`${source}: shard index ${index} is not in 0..${count - 1}`);
    return { index, count, source };
  };
  if (spec !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
    if (!m) throw new Error(`--shard must look like i/n (0-based i, e.g. 0/4), got '${spec}'`);
    return check(Number(m[1]), Number(m[2]), '--shard');
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    const min = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    return check(Number(env.SLURM_ARRAY_TASK_ID) - min, Number(env.SLURM_ARRAY_TASK_COUNT), 'SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT');
  }
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    const count = shards ?? (env.SWEEP_SHARDS !== undefined ? Number(env.SWEEP_SHARDS) : NaN);
    if (!Number.isFinite(count)) {
      throw new Error('JOB_COMPLETION_INDEX is set (a Kubernetes indexed job): give the number of shards (the job\'s completions) with --shards N or SWEEP_SHARDS');
    }
    return check(Number(env.JOB_COMPLETION_INDEX), count, 'JOB_COMPLETION_INDEX');
  }
  return { index: 0, count: 1, source: 'all settings' };
}

/** The settings of one shard: every count-th, starting at index (balanced across shards). */
export function shardSettings<T>(settings: readonly T[], shard: Pick<Shard, 'index' | 'count'>): T[] {
  return settings.filter((_, i) => i % shard.count === shard.index);
}

export interface SweepOptions {
  /** Options shared by every run (flags / config file); the grid sets K, beta and lr. */
  base: GivenConfig;
  grid: SweepGrid;
  /** The sweep folder: one run folder per setting in it. */
  dir: string;
  shard?: Shard;
  isCpu: boolean;
  progress?: ProgressMode;
  signal?: AbortSignal;
  print?: (line: string) => void;
}

export interface SweepRunOutcome {
  name: string;
  /** skipped: finished or diverged before; locked: another live task trains it. */
  status: TrainResult['status'] | 'skipped' | 'locked';
  message: string;
}

/** The exit status of a task whose run lock was taken over (see runSweep). */
export const LOCK_LOST_EXIT = 75;

/**
 * Why a run needs no training, or null: finished (with its evaluation), or diverged (a rerun
 * would diverge the same way; resume it by hand with a lower --lr).
 */
function doneReason(files: RunFiles, config: TrainConfig): string | null {
  const st = files.readStatus();
  if (st?.state === 'finished' && st.step >= config.steps && existsSync(files.evalJson)) return 'already finished';
  if (st?.state === 'diverged') return `diverged at step ${st.step} before; not retried (resume it with a lower --lr: npm run train -- --resume ${files.dir} --lr X)`;
  return null;
}

/** The run config of one setting (the preset is chosen from the base options alone). */
export function settingConfig(base: GivenConfig, s: SweepSetting, dir: string, isCpu: boolean): { config: TrainConfig; autoQuick: boolean } {
  const { config: probe, autoQuick } = resolveTrainConfig({ ...base, name: 'probe' }, { isCpu });
  const given: GivenConfig = {
    trainSubset: 55_000, // the seed tuned on a random 55,000 train and 5,500 valid images
    validSubset: 5_500,
    ...base,
    preset: probe.preset,
    codebookSize: s.codebookSize,
    beta: s.beta,
    lr: s.lr,
    name: s.name,
    runsDir: dir,
  };
  return { config: resolveTrainConfig(given, { isCpu }).config, autoQuick };
}

/** Runs this shard's settings one after another (finished runs are skipped, stopped ones resumed), then writes the summary. */
export async function runSweep(o: SweepOptions): Promise<{ outcomes: SweepRunOutcome[]; interrupted: boolean; summary: SweepSummary }> {
  const print = o.print ?? ((s: string) => console.log(s));
  const shard = o.shard ?? { index: 0, count: 1, source: 'all settings' };
  const all = expandGrid(o.grid);
  const mine = shardSettings(all, shard);
  mkdirSync(o.dir, { recursive: true });
  print(`sweep ${o.dir}: ${all.length} settings; shard ${shard.index}/${shard.count} (${shard.source}) runs ${mine.length}: ${mine.map((s) => s.name).join(', ') || '(none)'}`);
  const outcomes: SweepRunOutcome[] = [];
  let interrupted = false;
  for (const [i, s] of mine.entries()) {
    if (o.signal?.aborted) {
      interrupted = true;
      break;
    }
    const { config } = settingConfig(o.base, s, o.dir, o.isCpu);
    const files = new RunFiles(join(o.dir, s.name));
    const tag = `[${i + 1}/${mine.length}] ${s.name}`;
    const skip = (reason: string) => {
      print(`${tag}: ${reason}, skipped`);
      outcomes.push({ name: s.name, status: 'skipped', message: reason });
    };
    const before = doneReason(files, config);
    if (before) {
      skip(before);
      continue;
    }
    // A lost lock means another task judged this one dead and trains the run now: stop at
    // once, without saving, so that only the new owner writes the folder.
    const onLost = (by: LockOwner | null) => {
      print(`${tag}: the run's lock was taken over${by ? ` by ${describeOwner(by)}` : ''}; stopping without saving`);
      process.exit(LOCK_LOST_EXIT);
    };
    const lock = RunLock.acquire(`${files.dir}.lock`, { onLost });
    if (!(lock instanceof RunLock)) {
      const message = `locked by ${describeOwner(lock.heldBy)}`;
      print(`${tag}: ${message}, left to it`);
      outcomes.push({ name: s.name, status: 'locked', message });
      continue;
    }
    let result: TrainResult;
    try {
      if (lock.tookOver) print(`${tag}: took over the lock of ${describeOwner(lock.tookOver.from)}: ${lock.tookOver.reason}`);
      // another task may have finished the run between the check above and the lock
      const after = doneReason(files, config);
      if (after) {
        skip(after);
        continue;
      }
      const resume = existsSync(files.config) && files.latest() !== null;
      print(`${tag}: ${resume ? 'resuming' : 'starting'} (${config.preset} preset, ${config.steps} steps, batch ${config.batchSize})`);
      result = await train(config, { resume, overwrite: !resume, progress: o.progress, signal: o.signal, print });
    } finally {
      lock.release();
    }
    outcomes.push({ name: s.name, status: result.status, message: result.message });
    if (result.status === 'interrupted') {
      interrupted = true;
      break;
    }
  }
  const summary = summarizeSweep(o.dir, all.map((s) => s.name));
  print(summaryLine(summary));
  return { outcomes, interrupted, summary };
}

/** One line on a merged summary: where it is, and which runs are missing or unfinished. */
export function summaryLine(s: SweepSummary): string {
  const finished = s.runs.length - s.unfinished.length;
  const parts = [`summary of ${s.runs.length} runs (${finished} finished): ${s.markdownPath}, ${s.csvPath}; ${s.figures.length} figures`];
  if (s.unfinished.length) parts.push(`not finished: ${s.unfinished.map((r) => `${r.name} (${r.state} at step ${r.step}/${r.steps})`).join(', ')}`);
  if (s.missing.length) parts.push(`missing: ${s.missing.join(', ')}`);
  return parts.join('; ');
}

// ---- summary

export interface SweepRunSummary {
  name: string;
  codebook_size: number;
  beta: number;
  lr: number;
  state: RunStatus['state'] | 'unknown';
  step: number;
  steps: number;
  train_loss: number | null;
  train_recon_mse: number | null;
  train_perplexity: number | null;
  max_train_perplexity: number | null;
  valid_loss: number | null;
  best_valid_loss: number | null;
  best_step: number | null;
  valid_psnr: number | null;
  eval_split: string | null;
  eval_recon_mse: number | null;
  eval_psnr: number | null;
  eval_perplexity: number | null;
  eval_codebook_usage: number | null;
}

export const SUMMARY_COLUMNS: (keyof SweepRunSummary)[] = [
  'name',
  'codebook_size',
  'beta',
  'lr',
  'state',
  'step',
  'steps',
  'train_loss',
  'train_recon_mse',
  'train_perplexity',
  'max_train_perplexity',
  'valid_loss',
  'best_valid_loss',
  'best_step',
  'valid_psnr',
  'eval_split',
  'eval_recon_mse',
  'eval_psnr',
  'eval_perplexity',
  'eval_codebook_usage',
];

export interface SweepSummary {
  runs: SweepRunSummary[];
  /** Runs not finished: interrupted, failed, diverged, still running, or of unknown state. */
  unfinished: SweepRunSummary[];
  /** Expected settings with no readable run folder. */
  missing: string[];
  csvPath: string;
  markdownPath: string;
  figures: string[];
}

interface LoadedRun {
  summary: SweepRunSummary;
  rows: MetricRow[];
  /** The status's message (why it stopped), if any. */
  message: string | null;
}

function loadRun(dir: string): LoadedRun | null {
  const files = new RunFiles(dir);
  if (!existsSync(files.config)) return null;
  let cfg: TrainConfig;
  try {
    cfg = readConfigFile(files.config) as TrainConfig;
  } catch {
    return null;
  }
  const rows = readMetrics(files.metricsJsonl);
  const train = rows.filter((r) => r.split === 'train');
  const valid = rows.filter((r) => r.split === 'valid');
  const status = files.readStatus();
  const ev = readJson<Record<string, number | string>>(files.evalJson);
  const lastT = train[train.length - 1];
  const lastV = valid[valid.length - 1];
  const bestV = valid.reduce<MetricRow | null>((b, r) => (b === null || r.loss < b.loss ? r : b), null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    rows,
    message: status?.message ?? null,
    summary: {
      name: cfg.name,
      codebook_size: cfg.codebookSize,
      beta: cfg.beta,
      lr: cfg.lr,
      state: status?.state ?? 'unknown',
      step: status?.step ?? lastT?.step ?? 0,
      steps: cfg.steps,
      train_loss: num(lastT?.loss),
      train_recon_mse: num(lastT?.recon_mse),
      train_perplexity: num(lastT?.perplexity),
      max_train_perplexity: train.length ? Math.max(...train.map((r) => r.perplexity)) : null,
      valid_loss: num(lastV?.loss),
      best_valid_loss: num(bestV?.loss),
      best_step: bestV?.step ?? null,
      valid_psnr: num(lastV?.psnr),
      eval_split: typeof ev?.split === 'string' ? ev.split : null,
      eval_recon_mse: num(ev?.recon_mse),
      eval_psnr: num(ev?.psnr),
      eval_perplexity: num(ev?.perplexity),
      eval_codebook_usage: num(ev?.codebook_usage),
    },
  };
}

function cell(v: unknown, digits = 5): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(digits)));
  }
  return String(v);
}

const PARAMS = [
  { key: 'codebook_size', short: 'K', label: (v: number) => `K=${v}` },
  { key: 'beta', short: 'beta', label: (v: number) => `beta=${v}` },
  { key: 'lr', short: 'lr', label: (v: number) => `lr=${formatLr(v)}` },
] as const;

/**
 * Merges every run folder in `dir` (whichever shards made them) into summary.csv,
 * summary.md (sorted by best validation loss) and figures/: for each parameter, for each
 * setting of the other two, the loss and perplexity curves of its values overlaid. Runs in
 * any state are merged; summary.md lists the unfinished ones and the `expected` settings
 * that have no run folder. Every file is written atomically, so merges may run concurrently.
 */
export function summarizeSweep(dir: string, expected: readonly string[] = []): SweepSummary {
  const runs = loadSweepRuns(dir);
  const summaries = runs.map((r) => r.summary);
  mkdirSync(dir, { recursive: true });
  const csvPath = join(dir, 'summary.csv');
  writeFileAtomic(csvPath, [SUMMARY_COLUMNS.join(','), ...summaries.map((s) => SUMMARY_COLUMNS.map((c) => cell(s[c], 8)).join(','))].join('\n') + '\n');
  const unfinished = summaries.filter((r) => r.state !== 'finished');
  const present = new Set(summaries.map((r) => r.name));
  const missing = expected.filter((n) => !present.has(n));
  const markdownPath = join(dir, 'summary.md');
  writeFileAtomic(markdownPath, summaryMarkdown(dir, runs, unfinished, missing, expected.length));
  const figures = writeSweepFigures(join(dir, 'figures'), runs);
  return { runs: summaries, unfinished, missing, csvPath, markdownPath, figures };
}

/** The run folders in `dir`, ordered by K, then beta, then lr (largest first). */
function loadSweepRuns(dir: string): LoadedRun[] {
  const runs: LoadedRun[] = [];
  if (existsSync(dir)) {
    for (const f of readdirSync(dir, { withFileTypes: true })) {
      if (!f.isDirectory() || f.name === 'figures') continue;
      const r = loadRun(join(dir, f.name));
      if (r) runs.push(r);
    }
  }
  return runs.sort((a, b) => a.summary.codebook_size - b.summary.codebook_size || a.summary.beta - b.summary.beta || b.summary.lr - a.summary.lr);
}

const MARKDOWN_COLUMNS: [keyof SweepRunSummary, string][] = [
  ['codebook_size', 'K'],
  ['beta', 'beta'],
  ['lr', 'lr'],
  ['state', 'state'],
  ['step', 'step'],
  ['train_loss', 'train loss'],
  ['train_perplexity', 'train ppl'],
  ['best_valid_loss', 'best valid loss'],
  ['best_step', 'at step'],
  ['valid_psnr', 'valid PSNR'],
  ['eval_psnr', 'eval PSNR'],
  ['eval_perplexity', 'eval ppl'],
  ['eval_codebook_usage', 'codes used'],
];

/** summary.md: the runs ranked by best validation loss, then the unfinished and the missing ones. */
function summaryMarkdown(dir: string, runs: LoadedRun[], unfinished: SweepRunSummary[], missing: string[], expected: number): string {
  const summaries = runs.map((r) => r.summary);
  const ranked = [...summaries].sort((a, b) => (a.best_valid_loss ?? Infinity) - (b.best_valid_loss ?? Infinity));
  const messages = new Map(runs.map((r) => [r.summary.name, r.message]));
  const notes = [
    ...(unfinished.length ? ['', '## Not finished', '', ...unfinished.map((r) => `- ${r.name}: ${r.state} at step ${r.step}/${r.steps}${messages.get(r.name) ? ` (${messages.get(r.name)})` : ''}`)] : []),
    ...(missing.length ? ['', '## Missing', '', `No run folder yet: ${missing.join(', ')}.`] : []),
  ];
  const cols = MARKDOWN_COLUMNS;
  return [
    `# Sweep summary: ${dir}`,
    '',
    `${summaries.length} runs (${summaries.length - unfinished.length} finished${expected ? ` of ${expected} settings` : ''}), best validation loss first. Train loss and perplexity: the last logged interval's mean; eval: the final evaluation (${summaries.find((s) => s.eval_split)?.eval_split ?? 'none yet'} split).`,
    '',
    `| ${cols.map(([, h]) => h).join(' | ')} |`,
    `| ${cols.map(([k]) => (k === 'state' ? '---' : '---:')).join(' | ')} |`,
    ...ranked.map((s) => `| ${cols.map(([k]) => (k === 'lr' ? formatLr(s.lr) : cell(s[k], 4))).join(' | ')} |`),
    ...notes,
    '',
  ].join('\n');
}

/** For each parameter, for each setting of the other two with 2+ values of it: loss and perplexity curves overlaid. */
function writeSweepFigures(figDir: string, runs: LoadedRun[]): string[] {
  const figures: string[] = [];
  for (const p of PARAMS) {
    const others = PARAMS.filter((q) => q !== p);
    const groups = new Map<string, LoadedRun[]>();
    for (const r of runs) {
      const g = others.map((q) => `${q.short}${q.key === 'lr' ? formatLr(r.summary.lr) : r.summary[q.key]}`).join('-');
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(r);
    }
    for (const [g, members] of groups) {
      if (new Set(members.map((m) => m.summary[p.key])).size < 2) continue;
      members.sort((a, b) => (a.summary[p.key] as number) - (b.summary[p.key] as number));
      const title = others.map((q) => q.label(members[0].summary[q.key] as number)).join(', ');
      const series = (metric: 'loss' | 'perplexity') =>
        members.map((m, i) => {
          const t = m.rows.filter((r) => r.split === 'train');
          return { label: p.label(m.summary[p.key] as number), x: t.map((r) => r.step), y: t.map((r) => r[metric]), color: PALETTE[i % PALETTE.length] };
        });
      const specs: ChartSpec[] = [
        { title: `Loss by ${p.short} (${title})`, xLabel: 'step', yLabel: 'train loss (log scale)', logY: true, series: series('loss') },
        { title: `Perplexity by ${p.short} (${title})`, xLabel: 'step', yLabel: 'train perplexity', series: series('perplexity') },
      ];
      const path = join(figDir, `by-${p.short}-${g}.png`);
      writeCharts(path, specs, { columns: 2, width: 800, height: 520 });
      figures.push(path);
    }
  }
  return figures;
}
