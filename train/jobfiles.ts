// The job files of a sweep for cluster schedulers, filled in from the templates in cluster/:
// a SLURM job array and the summary job that runs after it (cluster/slurm/), and a Kubernetes
// Indexed Job with its merge Job (cluster/k8s/). A template's {{KEY}} fields are replaced by
// values; a line holding only a field whose value is empty is left out.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIELDS, type GivenConfig, kebab } from './config.js';
import { type SweepGrid, expandGrid } from './sweep.js';

/** The repository root (job files run the sweep from it). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const TEMPLATE_DIR = join(REPO_ROOT, 'cluster');

export interface SweepJob {
  /** The sweep folder (on storage every task sees). */
  dir: string;
  grid: SweepGrid;
  /** Options shared by every run, as given on the command line. */
  base: GivenConfig;
  /** Array tasks / indexes: each runs every tasks-th setting. */
  tasks: number;
  /** Tasks running at once (SLURM's % throttle, the Job's parallelism). */
  atOnce: number;
  gpus: number;
  jobName: string;
}

export interface SlurmOptions {
  /** The repository on the compute nodes. */
  repo: string;
  /** The Node.js binary on the compute nodes. */
  node: string;
  cpus: number;
  logDir: string;
  /** Extra sbatch options, one per element (e.g. '--partition=gpu', '--time 04:00:00'). */
  sbatch: string[];
}

export interface K8sOptions {
  image: string;
  /** The PersistentVolumeClaim of the shared volume, and where pods mount it. */
  claim: string;
  mount: string;
  /** The repository inside the image. */
  workdir: string;
}

/** Fills in a template; throws on a field without a value. */
export function renderTemplate(text: string, values: Record<string, string>, name = 'template'): string {
  const field = /\{\{([A-Z_]+)\}\}/g;
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const filled = line.replace(field, (_, key: string) => {
      if (!(key in values)) throw new Error(`${name}: no value for {{${key}}}`);
      return values[key];
    });
    if (/^\s*\{\{[A-Z_]+\}\}\s*$/.test(line) && filled.trim() === '') continue;
    out.push(filled);
  }
  return out.join('\n');
}

function template(path: string): string {
  return readFileSync(join(TEMPLATE_DIR, path), 'utf8');
}

/** A word for bash: as it is when it is safe, else in single quotes. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The sweep's options as flags (--key=value: a value may start with '-'). */
export function configArgs(given: GivenConfig): string[] {
  const out: string[] = [];
  for (const f of FIELDS) {
    const v = given[f.key];
    if (v === undefined) continue;
    const flag = `--${kebab(f.key)}`;
    // the only boolean option, ema, also has a --no- form
    if (f.kind === 'bool') out.push(v ? flag : `--no-${kebab(f.key)}`);
    else out.push(`${flag}=${v === null ? '' : String(v)}`);
  }
  return out;
}

function gridArgs(grid: SweepGrid): string[] {
  return [`--codebook-size=${grid.codebookSize.join(',')}`, `--beta=${grid.beta.join(',')}`, `--lr=${grid.lr.join(',')}`];
}

/** What each task runs after `scripts/sweep.ts` (its shard comes from the scheduler). */
export function taskArgs(job: SweepJob): string[] {
  return [`--out=${job.dir}`, ...gridArgs(job.grid), ...configArgs(job.base), '--progress=lines'];
}

/** What the merge runs after `scripts/sweep.ts`: the grid names the settings it expects. */
export function summaryArgs(job: SweepJob): string[] {
  return ['--summary-only', `--out=${job.dir}`, ...gridArgs(job.grid)];
}

/** Checks what every scheduler needs; returns the number of settings. */
function checkJob(job: SweepJob): number {
  const settings = expandGrid(job.grid).length;
  if (!Number.isInteger(job.tasks) || job.tasks < 1 || job.tasks > settings) throw new Error(`--tasks must be 1..${settings} (the number of settings), got ${job.tasks}`);
  if (!Number.isInteger(job.atOnce) || job.atOnce < 1) throw new Error(`--at-once must be a positive integer, got ${job.atOnce}`);
  if (!Number.isInteger(job.gpus) || job.gpus < 0) throw new Error(`--gpus must be an integer >= 0, got ${job.gpus}`);
  // a Kubernetes name (DNS label) leaves room for the pods' suffixes; SLURM takes it as well
  if (!/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/.test(job.jobName)) throw new Error(`--job-name must be lowercase letters, digits and '-', at most 40 characters, got '${job.jobName}'`);
  if (/\s/.test(job.dir)) throw new Error(`the sweep folder must not contain spaces (SLURM's #SBATCH lines cannot hold them): '${job.dir}'`);
  return settings;
}

/**
 * Groups sbatch options given as words ('--time', '04:00:00', '-p', 'gpu') into one option
 * per element: a word starting with '-' begins an option, the others are its values.
 */
export function groupOptions(words: readonly string[]): string[] {
  const out: string[] = [];
  for (const w of words) {
    if (w.startsWith('-') || out.length === 0) out.push(w);
    else out[out.length - 1] += ` ${w}`;
  }
  return out;
}

/** Options that ask for GPUs (the summary job needs none). */
function isGpuOption(o: string): boolean {
  return /^(--gres|--gpus|--gpus-per-[a-z]+|-G)(=|\s|$)/.test(o);
}

/** The array job and the summary job (sbatch scripts). */
export function slurmJobFiles(job: SweepJob, o: SlurmOptions): { sweep: string; summary: string } {
  checkJob(job);
  if (/\s/.test(o.logDir)) throw new Error(`the log folder must not contain spaces: '${o.logDir}'`);
  const lines = (opts: string[]) => opts.map((x) => `#SBATCH ${x}`).join('\n');
  const common = {
    JOB_NAME: job.jobName,
    LOG_DIR: o.logDir,
    REPO: shellQuote(o.repo),
    NODE: shellQuote(o.node),
  };
  const sweep = renderTemplate(
    template('slurm/sweep.sbatch'),
    {
      ...common,
      LAST_TASK: String(job.tasks - 1),
      AT_ONCE: String(job.atOnce),
      CPUS: String(o.cpus),
      // a GPU request among the extra options replaces the default one
      GPU_REQUEST: job.gpus > 0 && !o.sbatch.some(isGpuOption) ? `#SBATCH --gres=gpu:${job.gpus}` : '',
      SBATCH_OPTIONS: lines(o.sbatch),
      SWEEP_ARGS: taskArgs(job).map(shellQuote).join(' '),
    },
    'cluster/slurm/sweep.sbatch',
  );
  const summary = renderTemplate(
    template('slurm/summary.sbatch'),
    { ...common, SBATCH_OPTIONS: lines(o.sbatch.filter((x) => !isGpuOption(x))), SUMMARY_ARGS: summaryArgs(job).map(shellQuote).join(' ') },
    'cluster/slurm/summary.sbatch',
  );
  return { sweep, summary };
}

/** The Indexed Job and its merge Job (one YAML file, two documents). */
export function k8sManifest(job: SweepJob, o: K8sOptions): string {
  checkJob(job);
  const mount = o.mount.replace(/\/+$/, '');
  if (!job.dir.startsWith(`${mount}/`)) throw new Error(`the sweep folder (--out ${job.dir}) must be on the shared volume, under --mount ${mount}`);
  const command = (args: string[]) => JSON.stringify(['node', '--import', 'tsx', 'scripts/sweep.ts', ...args]).replace(/","/g, '", "');
  return renderTemplate(
    template('k8s/sweep.yaml'),
    {
      JOB_NAME: job.jobName,
      TASKS: String(job.tasks),
      AT_ONCE: String(job.atOnce),
      IMAGE: JSON.stringify(o.image),
      WORKDIR: JSON.stringify(o.workdir),
      CLAIM: JSON.stringify(o.claim),
      MOUNT: JSON.stringify(mount),
      GPU_RESOURCES: job.gpus > 0 ? `{limits: {"nvidia.com/gpu": ${job.gpus}}}` : '{}',
      SWEEP_COMMAND: command(taskArgs(job)),
      SUMMARY_COMMAND: command(summaryArgs(job)),
    },
    'cluster/k8s/sweep.yaml',
  );
}
