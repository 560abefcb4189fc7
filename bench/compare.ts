// Our training step beside PyTorch's three arms (bench/torch_ref.py), as one markdown table:
// wall ms and images/s of back-to-back steps on both sides (the headline), our speedup over each
// arm, peak memory, and whether each goal of GOALS is met. bench/gpu.sh runs it last.
//   npx tsx bench/compare.ts OURS.json TORCH.json [--out FILE.md]
// OURS.json: `npm run bench -- --json` (the seed model's train_step and replay_step cases: the fastest variant at
// each batch is ours, named in the table); TORCH.json:
// `python3 bench/torch_ref.py --json`. A file that is missing or unreadable leaves its columns
// empty and says why under the table: a failed PyTorch run never hides our numbers.
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { BenchEntry } from './harness.js';

export const ARMS = ['strict', 'default', 'tuned'] as const;
export type Arm = (typeof ARMS)[number];

/** One arm at one batch, as torch_ref.py writes it (schema torch_ref/2). */
export interface TorchStep {
  arm: string;
  batch: number;
  status: 'ok' | 'skipped' | 'failed';
  reason: string | null;
  wall_ms?: number;
  images_per_s?: number;
  gpu_ms?: number | null;
  peak_bytes?: number | null;
  steps?: number;
  compile?: { mode: string | null; status: string; reason: string | null };
}

export interface TorchResults {
  schema: string;
  info: { torch: string; device: string; steps?: number; rounds?: number };
  train_step: TorchStep[];
}

/** A goal of issue #23: a speedup over an arm at a batch, or peak memory no more than an arm's. */
export type Goal =
  | { kind: 'speedup'; batch: number; arm: Arm; atLeast: number }
  | { kind: 'memory'; batch: number; arm: Arm };

// Speed against PyTorch as users run it (defaults) and tuned; memory against the defaults.
export const GOALS: Goal[] = [
  { kind: 'speedup', batch: 256, arm: 'default', atLeast: 1.5 },
  { kind: 'speedup', batch: 256, arm: 'tuned', atLeast: 1 },
  { kind: 'speedup', batch: 32, arm: 'default', atLeast: 2 },
  { kind: 'memory', batch: 32, arm: 'default' },
  { kind: 'memory', batch: 256, arm: 'default' },
];

export interface Verdict {
  goal: Goal;
  /** 'unknown' when either side has no number for it (the reason says which). */
  status: 'met' | 'missed' | 'unknown';
  /** The measured speedup (ours over the arm) or our peak over the arm's, when known. */
  value: number | null;
  reason: string | null;
}

/** The step families that are a seed-model training step as `npm run train` can take it (op by op, or replayed). */
const STEP_FAMILIES = ['train_step', 'replay_step'];

/** Our fastest seed-model training step at `batch` (any family and precision OURS holds), if any. */
function ourStep(ours: BenchEntry[], batch: number): BenchEntry | undefined {
  const steps = ours.filter((e) => STEP_FAMILIES.includes(e.family) && e.params.model === 'seed' && e.params.batch === batch && e.wall_ms > 0);
  return steps.reduce<BenchEntry | undefined>((best, e) => (!best || e.wall_ms < best.wall_ms ? e : best), undefined);
}

function torchStep(torch: TorchResults | null, arm: Arm, batch: number): TorchStep | undefined {
  return torch?.train_step.find((s) => s.arm === arm && s.batch === batch);
}

/** Ours over the arm: the arm's wall ms per step over ours (above 1: we are faster). */
export function speedup(ours: BenchEntry | undefined, theirs: TorchStep | undefined): number | null {
  if (!ours || !theirs || theirs.status !== 'ok' || !theirs.wall_ms || !(ours.wall_ms > 0)) return null;
  return theirs.wall_ms / ours.wall_ms;
}

/** Whether each goal is met, from both sides' results (either may be missing). */
export function judge(ours: BenchEntry[], torch: TorchResults | null, goals: Goal[] = GOALS): Verdict[] {
  return goals.map((goal) => {
    const mine = ourStep(ours, goal.batch);
    const theirs = torchStep(torch, goal.arm, goal.batch);
    const missing = !mine
      ? `no train_step.seed.b${goal.batch} in ours`
      : !theirs
        ? `no ${goal.arm} arm at batch ${goal.batch} in torch`
        : theirs.status !== 'ok'
          ? `${goal.arm} arm ${theirs.status}: ${theirs.reason}`
          : null;
    if (missing) return { goal, status: 'unknown', value: null, reason: missing };
    if (goal.kind === 'speedup') {
      const s = speedup(mine, theirs)!;
      return { goal, status: s >= goal.atLeast ? 'met' : 'missed', value: s, reason: null };
    }
    if (theirs!.peak_bytes == null) return { goal, status: 'unknown', value: null, reason: `torch reports no peak bytes on this device` };
    if (!Number.isFinite(mine!.peak_bytes)) return { goal, status: 'unknown', value: null, reason: 'ours reports no peak bytes' };
    const ratio = mine!.peak_bytes / theirs!.peak_bytes;
    return { goal, status: ratio <= 1 ? 'met' : 'missed', value: ratio, reason: null };
  });
}

function goalName(g: Goal): string {
  return g.kind === 'speedup' ? `>= ${g.atLeast}x ${g.arm}` : `peak <= ${g.arm}`;
}

function verdictText(v: Verdict): string {
  const mark = { met: 'met', missed: 'MISSED', unknown: 'unknown' }[v.status];
  const value = v.value === null ? '' : v.goal.kind === 'speedup' ? ` (${v.value.toFixed(2)}x)` : ` (${v.value.toFixed(2)} of it)`;
  return `${goalName(v.goal)}: ${mark}${value}`;
}

const ms = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(2));
const perS = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(x < 100 ? 1 : 0));
const mib = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '-' : (x / 2 ** 20).toFixed(0));
const times = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)}x`);

/**
 * The markdown: a header naming both sides, one row per batch, and notes (arms skipped or
 * failed, the tuned arm's torch.compile outcome, inputs that could not be read).
 */
export function formatComparison(ours: BenchEntry[], torch: TorchResults | null, notes: string[] = [], goals: Goal[] = GOALS): string {
  const oursSteps = ours.filter((e) => STEP_FAMILIES.includes(e.family) && e.params.model === 'seed');
  const batches = [...new Set([...oursSteps.map((e) => e.params.batch as number), ...(torch?.train_step ?? []).map((s) => s.batch)])].sort((a, b) => a - b);
  const verdicts = judge(ours, torch, goals);
  const head = [
    'batch', 'ours (fastest variant)', 'ours ms', 'ours img/s', 'ours GPU ms',
    ...ARMS.flatMap((a) => [`${a} ms`, `${a} img/s`]),
    ...ARMS.map((a) => `vs ${a}`),
    'peak MiB ours', ...ARMS.map((a) => `peak MiB ${a}`),
    'goals',
  ];
  const rows = batches.map((b) => {
    const mine = ourStep(ours, b);
    const arms = ARMS.map((a) => torchStep(torch, a, b));
    const ok = (s: TorchStep | undefined) => (s?.status === 'ok' ? s : undefined);
    const goalsHere = verdicts.filter((v) => v.goal.batch === b).map(verdictText).join('; ');
    return [
      String(b), mine?.name ?? '-', ms(mine?.wall_ms), perS(mine?.images_per_s), mine?.timing === 'gpu' ? ms(mine.median_ms) : '-',
      ...arms.flatMap((s) => [ms(ok(s)?.wall_ms), perS(ok(s)?.images_per_s)]),
      ...arms.map((s) => times(speedup(mine, s))),
      mib(mine?.peak_bytes), ...arms.map((s) => mib(ok(s)?.peak_bytes)),
      goalsHere || '-',
    ];
  });
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const out = [
    `Seed model training step: ours vs PyTorch ${torch ? `${torch.info.torch} on ${torch.info.device}` : '(no results)'}`,
    '',
    'Wall ms per step over back-to-back steps with one sync at the end (images/s from it); vs ARM = ARM ms / ours ms (above 1: ours faster). ' +
      'Peak: ours, pool bytes a step needs; PyTorch, max_memory_allocated.',
    '',
    line(head),
    line(head.map(() => '---')),
    ...rows.map(line),
  ];
  const extra: string[] = [...notes];
  const stepsOurs = [...new Set(oursSteps.map((e) => e.back_to_back))];
  if (torch) extra.push(`steps per sync: ours ${stepsOurs.join('/') || '-'}, torch ${torch.info.steps ?? '-'} (rounds: torch ${torch.info.rounds ?? '-'})`);
  for (const s of torch?.train_step ?? []) {
    if (s.status !== 'ok') extra.push(`torch ${s.arm} B=${s.batch} ${s.status}: ${s.reason}`);
    else if (s.compile?.mode) extra.push(`torch ${s.arm} B=${s.batch}: torch.compile(mode=${s.compile.mode}) ${s.compile.status}${s.compile.reason ? `: ${s.compile.reason}` : ''}`);
  }
  for (const v of verdicts) if (v.status === 'unknown') extra.push(`goal ${goalName(v.goal)} at batch ${v.goal.batch} unknown: ${v.reason}`);
  if (extra.length) out.push('', ...extra.map((n) => `- ${n}`));
  return out.join('\n');
}

/** OURS.json's entries, or a note saying why there are none. */
export function readOurs(path: string): { entries: BenchEntry[]; note: string | null } {
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (!Array.isArray(data)) return { entries: [], note: `ours (${path}): not the JSON array \`npm run bench -- --json\` writes` };
    return { entries: data as BenchEntry[], note: null };
  } catch (e) {
    return { entries: [], note: `ours (${path}): ${readError(e)}` };
  }
}

/** TORCH.json's results, or a note saying why there are none. */
export function readTorch(path: string): { torch: TorchResults | null; note: string | null } {
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as Partial<TorchResults>;
    if (data?.schema !== 'torch_ref/2' || !Array.isArray(data.train_step) || !data.info) {
      return { torch: null, note: `torch (${path}): not torch_ref.py's JSON (schema torch_ref/2, got ${JSON.stringify(data?.schema ?? null)})` };
    }
    return { torch: data as TorchResults, note: null };
  } catch (e) {
    return { torch: null, note: `torch (${path}): ${readError(e)}` };
  }
}

function readError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such file (that side failed or did not run)';
  return err instanceof SyntaxError ? `not valid JSON (${err.message})` : err.message;
}

function main(argv: string[]): void {
  const files: string[] = [];
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') {
      out = argv[++i];
      if (out === undefined) throw new Error('compare: --out needs a file');
    } else if (argv[i].startsWith('--')) throw new Error(`compare: unknown argument '${argv[i]}'`);
    else files.push(argv[i]);
  }
  if (files.length !== 2) throw new Error('usage: npx tsx bench/compare.ts OURS.json TORCH.json [--out FILE.md]');
  const ours = readOurs(files[0]);
  const torch = readTorch(files[1]);
  const notes = [ours.note, torch.note].filter((n): n is string => n !== null);
  const md = formatComparison(ours.entries, torch.torch, notes);
  console.log(md);
  if (out) writeFileSync(out, md + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
