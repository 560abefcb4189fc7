// `npm run sweep -- [options]`: the seed's grid (K 128/256/512 x beta 0.25/0.75/1.25/1.75 x
// lr 1e-3/1e-4/1e-5), any subset by flags, one run folder each under the sweep folder, then a
// summary (CSV, Markdown, overlaid curves). Exit codes as `npm run train`.
import { init } from '../engine/node.js';
import { parseTrainArgs } from '../train/config.js';
import { SEED_GRID, type SweepGrid, expandGrid, resolveShard, runSweep, shardSettings, summarizeSweep, settingConfig } from '../train/sweep.js';

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
    '      --summary-only         only merge the existing runs into the summary',
    '      --list                 print the settings (of this shard) and exit',
    '',
    'Every `npm run train` option (--steps, --batch-size, --data, --preset, --config, ...) applies to',
    "each run. The seed tuned on random subsets of 55000 train and 5500 valid images; those are the",
    'defaults here (--train-subset / --valid-subset change them). On a CPU device the quick preset',
    'applies as in `npm run train`.',
  ].join('\n');
}

async function main(): Promise<number> {
  let cli;
  try {
    cli = parseTrainArgs(process.argv.slice(2), {
      extra: {
        out: { type: 'string', short: 'o' },
        shard: { type: 'string' },
        shards: { type: 'string' },
        'summary-only': { type: 'boolean' },
        list: { type: 'boolean' },
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
  if (cli.extra['summary-only']) {
    const s = summarizeSweep(dir);
    console.log(`merged ${s.runs.length} runs: ${s.markdownPath}, ${s.csvPath}, ${s.figures.length} figures in ${dir}/figures`);
    return 0;
  }
  for (const k of ['name', 'runsDir'] as const) {
    if (cli.given[k] !== undefined) {
      console.error(`sweep: --${k === 'name' ? 'name' : 'runs-dir'} does not apply (runs are named after their setting; use --out for the sweep folder)`);
      return 2;
    }
  }
  const grid: SweepGrid = {
    codebookSize: cli.lists.codebookSize ?? (cli.given.codebookSize !== undefined ? [cli.given.codebookSize] : SEED_GRID.codebookSize),
    beta: cli.lists.beta ?? (cli.given.beta !== undefined ? [cli.given.beta] : SEED_GRID.beta),
    lr: cli.lists.lr ?? (cli.given.lr !== undefined ? [cli.given.lr] : SEED_GRID.lr),
  };
  const shards = cli.extra.shards === undefined ? undefined : Number(cli.extra.shards);
  const shard = resolveShard(cli.extra.shard as string | undefined, process.env, shards);
  const base = { ...cli.given };
  delete base.codebookSize;
  delete base.beta;
  delete base.lr;
  if (!base.data && process.env.VQ_DATA) base.data = process.env.VQ_DATA;

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

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`sweep: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
