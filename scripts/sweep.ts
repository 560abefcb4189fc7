// `npm run sweep -- [options]`: the seed's grid (K 128/256/512 x beta 0.25/0.75/1.25/1.75 x
// lr 1e-3/1e-4/1e-5), any subset by flags, one run folder each under the sweep folder, then a
// summary (CSV, Markdown, overlaid curves). Exit codes as `npm run train`. With --submit slurm
// it writes and submits the SLURM job files instead; --emit slurm|k8s prints them.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { init } from '../engine/node.js';
import { writeFileAtomic } from '../train/atomic.js';
import { type GivenConfig, parseTrainArgs } from '../train/config.js';
import { REPO_ROOT, type SweepJob, groupOptions, k8sManifest, slurmJobFiles } from '../train/jobfiles.js';
import { SEED_GRID, type SweepGrid, expandGrid, resolveShard, runSweep, shardSettings, summarizeSweep, summaryLine, settingConfig } from '../train/sweep.js';

function help(): string {
  return [
    'Usage: npm run sweep -- [options]',
    '',
    "Runs the seed's hyperparameter grid, one run folder per setting in the sweep folder",
    '(default runs/sweep), skipping finished runs and resuming stopped ones, then writes',
    'summary.csv, summary.md and figures/by-<param>-*.png (loss and perplexity curves of each',
    "parameter's values overlaid, the other two fixed).",
    '',
    'Grid (comma-separated lists; default the seed\'s):',
    '  -K, --codebook-size LIST   default 128,256,512',
    '      --beta LIST            default 0.25,0.75,1.25,1.75',
    '      --lr LIST              default 1e-3,1e-4,1e-5',
    '',
    'Sweep options:',
    '      --out DIR              sweep folder (default runs/sweep)',
    '      --shard i/n            run only settings i, i+n, i+2n, ... (0-based); also taken from',
    '                             SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (minus',
    '                             SLURM_ARRAY_TASK_MIN), or from a Kubernetes indexed job\'s',
    '                             JOB_COMPLETION_INDEX with --shards N (or SWEEP_SHARDS)',
    '      --shards N             the shard count for JOB_COMPLETION_INDEX',
    '      --summary-only         only merge the existing runs into the summary (with grid',
    '                             options: and name the settings that have no run folder)',
    '      --list                 print the settings (of this shard) and exit',
    '',
    'On a cluster (see README, "Running the sweep on a cluster"):',
    '      --submit slurm         write <out>/jobs/sweep.sbatch (a job array) and summary.sbatch',
    '                             (merges after every task ends) and submit both with sbatch;',
    '                             options after a second -- go to both as #SBATCH lines',
    '                             (e.g. -- --partition=gpu --time=04:00:00 --account=lab)',
    '      --emit slurm|k8s       print the job files instead (k8s: an Indexed Job and its merge Job)',
    '      --tasks N              array tasks (default: one per setting); task i runs settings',
    '                             i, i+N, i+2N, ...',
    '      --at-once N            tasks running at once (SLURM %N, the Job\'s parallelism; default all)',
    '      --gpus N               GPUs per task (default 1; 0 for none)',
    '      --job-name NAME        default vqvae-sweep',
    '      --cpus N               SLURM: CPUs per task (default 4)',
    '      --node PATH            SLURM: the node binary on the compute nodes (default this one)',
    '      --image IMAGE          k8s: the image (this repository at --workdir, Node 20, npm ci done)',
    '      --workdir DIR          k8s: the repository in the image (default /app)',
    '      --claim NAME           k8s: PersistentVolumeClaim of the shared volume (default vqvae-shared)',
    '      --mount DIR            k8s: where pods mount it (default /shared); --out must be under it',
    '                             (default <mount>/sweep)',
    '',
    'Every `npm run train` option (--steps, --batch-size, --data, --preset, --config, ...) applies to',
    "each run. The seed tuned on random subsets of 55000 train and 5500 valid images; those are the",
    'defaults here (--train-subset / --valid-subset change them). On a CPU device the quick preset',
    'applies as in `npm run train`.',
  ].join('\n');
}

async function main(): Promise<number> {
  // words after a second `--` are sbatch options, passed through to the job files
  const argv = process.argv.slice(2);
  const dd = argv.indexOf('--');
  const schedulerWords = dd >= 0 ? argv.slice(dd + 1) : [];
  let cli;
  try {
    cli = parseTrainArgs(dd >= 0 ? argv.slice(0, dd) : argv, {
      extra: {
        out: { type: 'string', short: 'o' },
        shard: { type: 'string' },
        shards: { type: 'string' },
        'summary-only': { type: 'boolean' },
        list: { type: 'boolean' },
        submit: { type: 'string' },
        emit: { type: 'string' },
        tasks: { type: 'string' },
        'at-once': { type: 'string' },
        gpus: { type: 'string' },
        'job-name': { type: 'string' },
        cpus: { type: 'string' },
        node: { type: 'string' },
        image: { type: 'string' },
        workdir: { type: 'string' },
        claim: { type: 'string' },
        mount: { type: 'string' },
      },
      listKeys: ['codebookSize', 'beta', 'lr'],
    });
  } catch (e) {
    console.error(`sweep: ${(e as Error).message}`);
    return 2;
  }
  if (cli.help) {
    console.log(help());
    return 0;
  }
  if (cli.resume) {
    console.error('sweep: --resume is not a sweep option (a sweep resumes its stopped runs by itself)');
    return 2;
  }
  const dir = (cli.extra.out as string | undefined) ?? 'runs/sweep';
  const gridGiven = ['codebookSize', 'beta', 'lr'].some((k) => cli.lists[k as 'beta'] !== undefined || cli.given[k as 'beta'] !== undefined);
  if (cli.extra['summary-only']) {
    const s = summarizeSweep(dir, gridGiven ? expandGrid(gridOf(cli)).map((x) => x.name) : []);
    console.log(summaryLine(s));
    return 0;
  }
  if (schedulerWords.length && cli.extra.submit !== 'slurm' && cli.extra.emit !== 'slurm') {
    console.error(`sweep: options after a second -- (${schedulerWords.join(' ')}) are sbatch options: only for --submit slurm or --emit slurm`);
    return 2;
  }
  for (const k of ['name', 'runsDir'] as const) {
    if (cli.given[k] !== undefined) {
      console.error(`sweep: --${k === 'name' ? 'name' : 'runs-dir'} does not apply (runs are named after their setting; use --out for the sweep folder)`);
      return 2;
    }
  }
  const grid = gridOf(cli);
  const base = { ...cli.given };
  delete base.codebookSize;
  delete base.beta;
  delete base.lr;
  if (!base.data && process.env.VQ_DATA) base.data = process.env.VQ_DATA;

  if (cli.extra.submit !== undefined || cli.extra.emit !== undefined) {
    if (cli.extra.shard !== undefined || cli.extra.shards !== undefined) {
      console.error('sweep: --shard/--shards do not apply to --submit/--emit (the scheduler gives each task its shard; see --tasks)');
      return 2;
    }
    return jobFiles(cli.extra, grid, base, dir, schedulerWords);
  }
  const shards = cli.extra.shards === undefined ? undefined : Number(cli.extra.shards);
  const shard = resolveShard(cli.extra.shard as string | undefined, process.env, shards);

  if (cli.extra.list) {
    for (const s of shardSettings(expandGrid(grid), shard)) console.log(s.name);
    return 0;
  }

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) {
      console.error(`\n${sig} again: exiting without saving`);
      process.exit(130);
    }
    console.error(`\n${sig}: finishing the current step, saving, and stopping the sweep (${sig} again to quit at once)`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const r = await init();
  const probe = settingConfig(base, expandGrid(grid)[0], dir, r.caps.isCpu);
  if (probe.autoQuick) {
    console.log(`CPU device detected (${r.caps.description}): every run uses the quick preset (${probe.config.steps} steps, batch ${probe.config.batchSize}, hidden ${probe.config.hidden}); --preset seed for the seed's settings.`);
  }
  const out = await runSweep({ base, grid, dir, shard, isCpu: r.caps.isCpu, progress: cli.progress, signal: stop.signal });
  if (out.interrupted) return 130;
  return out.outcomes.some((o) => o.status === 'diverged') ? 1 : 0;
}

function gridOf(cli: ReturnType<typeof parseTrainArgs>): SweepGrid {
  return {
    codebookSize: cli.lists.codebookSize ?? (cli.given.codebookSize !== undefined ? [cli.given.codebookSize] : SEED_GRID.codebookSize),
    beta: cli.lists.beta ?? (cli.given.beta !== undefined ? [cli.given.beta] : SEED_GRID.beta),
    lr: cli.lists.lr ?? (cli.given.lr !== undefined ? [cli.given.lr] : SEED_GRID.lr),
  };
}

function intOption(extra: Record<string, string | boolean | undefined>, name: string, fallback: number): number {
  const v = extra[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be an integer >= 0, got '${v}'`);
  return n;
}

/** --submit slurm and --emit slurm|k8s. */
function jobFiles(extra: Record<string, string | boolean | undefined>, grid: SweepGrid, base: GivenConfig, outGiven: string, sbatchWords: string[]): number {
  const submit = extra.submit as string | undefined;
  const emit = extra.emit as string | undefined;
  if (submit !== undefined && submit !== 'slurm') throw new Error(`--submit takes slurm, got '${submit}' (for Kubernetes: --emit k8s, then kubectl apply)`);
  if (emit !== undefined && emit !== 'slurm' && emit !== 'k8s') throw new Error(`--emit takes slurm or k8s, got '${emit}'`);
  if (submit !== undefined && emit !== undefined) throw new Error('give --submit or --emit, not both');
  const scheduler = submit ?? emit;
  const settings = expandGrid(grid).length;
  const tasks = intOption(extra, 'tasks', settings);
  const k8s = scheduler === 'k8s';
  const mount = (extra.mount as string | undefined) ?? '/shared';
  // Relative paths would resolve elsewhere on a compute node: SLURM tasks get absolute ones
  // (from here); Kubernetes paths are the container's, under the volume's mount.
  const dir = k8s ? (extra.out === undefined ? `${mount.replace(/\/+$/, '')}/sweep` : outGiven) : resolve(outGiven);
  const job: SweepJob = {
    dir,
    grid,
    base: k8s ? base : absolutePaths(base),
    tasks,
    atOnce: intOption(extra, 'at-once', tasks),
    gpus: intOption(extra, 'gpus', 1),
    jobName: (extra['job-name'] as string | undefined) ?? 'vqvae-sweep',
  };
  if (k8s) {
    process.stdout.write(
      k8sManifest(job, {
        image: (extra.image as string | undefined) ?? 'vqvae-webgpu:latest',
        workdir: (extra.workdir as string | undefined) ?? '/app',
        claim: (extra.claim as string | undefined) ?? 'vqvae-shared',
        mount,
      }),
    );
    return 0;
  }
  const jobsDir = join(dir, 'jobs');
  const logDir = join(dir, 'logs');
  const files = slurmJobFiles(job, {
    repo: REPO_ROOT,
    node: (extra.node as string | undefined) ?? process.execPath,
    cpus: Math.max(1, intOption(extra, 'cpus', 4)),
    logDir,
    sbatch: groupOptions(sbatchWords),
  });
  const sweepPath = join(jobsDir, 'sweep.sbatch');
  const summaryPath = join(jobsDir, 'summary.sbatch');
  if (emit) {
    process.stdout.write(`# ==> ${sweepPath} <==\n${files.sweep}\n# ==> ${summaryPath} <==\n${files.summary}\n`);
    process.stdout.write(`# submit with (sbatch needs the log folder to exist):\n#   mkdir -p ${logDir} && A=$(sbatch --parsable ${sweepPath}) && sbatch --dependency=afterany:\${A%%;*} ${summaryPath}\n`);
    return 0;
  }
  mkdirSync(jobsDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  writeFileAtomic(sweepPath, files.sweep);
  writeFileAtomic(summaryPath, files.summary);
  const arrayJob = sbatch(['--parsable', sweepPath]);
  const summaryJob = sbatch(['--parsable', `--dependency=afterany:${arrayJob}`, summaryPath]);
  const line = `${new Date().toISOString()} array job ${arrayJob} (${job.tasks} tasks for ${settings} settings, ${job.atOnce} at once), summary job ${summaryJob} (after it)`;
  appendFileSync(join(jobsDir, 'submissions.log'), line + '\n');
  console.log(`submitted array job ${arrayJob} (${job.tasks} tasks for ${settings} settings, ${job.atOnce} at once) and summary job ${summaryJob} (after it)`);
  console.log(`job files: ${sweepPath}, ${summaryPath}; task logs: ${logDir}/${job.jobName}-${arrayJob}_<task>.out; summary: ${join(dir, 'summary.md')}`);
  return 0;
}

/** The data paths of the options, absolute (tasks run from the repository root). */
function absolutePaths(base: GivenConfig): GivenConfig {
  const out = { ...base };
  for (const k of ['data', 'cacheDir'] as const) {
    const v = out[k];
    if (typeof v === 'string' && !isAbsolute(v)) out[k] = resolve(v);
  }
  return out;
}

/** Runs sbatch; returns the job id. */
function sbatch(args: string[]): string {
  const r = spawnSync('sbatch', args, { encoding: 'utf8' });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? 'sbatch not found: --submit slurm runs where SLURM\'s commands are (a login node); --emit slurm prints the job files' : `sbatch: ${r.error.message}`);
  }
  if (r.status !== 0) throw new Error(`sbatch ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  const id = /^(\d+)/.exec(r.stdout.trim())?.[1];
  if (!id) throw new Error(`sbatch printed no job id: '${r.stdout.trim()}'`);
  return id;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`sweep: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
