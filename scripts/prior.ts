// `npm run prior -- runs/<name> [options]`: trains the PixelCNN prior over the run's VQ-VAE
// codes (train/prior.ts). Exit codes: 0 finished, 130 interrupted (checkpoint saved; continue
// with --resume), 1 error, 2 bad arguments.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { init } from '../engine/node.js';
import type { ProgressMode } from '../train/progress.js';
import { PRIOR_CPU_PRESET, PRIOR_GPU_PRESET, PRIOR_RESUMABLE, type PriorConfig, kebab, trainPrior } from '../train/prior.js';
import { readJson } from '../train/runfiles.js';
import { onStopSignals, relaunchWithoutDawnNoise } from './cli.js';

const NUMERIC: (keyof PriorConfig)[] = ['width', 'layers', 'headWidth', 'firstKernel', 'kernel', 'steps', 'batchSize', 'lr', 'seed', 'trainImages', 'validImages', 'logEvery', 'valEvery', 'checkpointEvery', 'keepCheckpoints'];

function help(): string {
  return `npm run prior -- runs/<name> [options]
Trains a gated PixelCNN prior over the 16x16 code maps of the VQ-VAE in runs/<name>
(its checkpoints/best, else the latest step checkpoint). Output in runs/<name>/prior/.
  --preset gpu|cpu     gpu: width ${PRIOR_GPU_PRESET.width}, ${PRIOR_GPU_PRESET.layers} layers, batch ${PRIOR_GPU_PRESET.batchSize}, ${PRIOR_GPU_PRESET.steps} steps, lr ${PRIOR_GPU_PRESET.lr}
                       cpu: width ${PRIOR_CPU_PRESET.width}, ${PRIOR_CPU_PRESET.layers} layers, batch ${PRIOR_CPU_PRESET.batchSize}, ${PRIOR_CPU_PRESET.steps} steps, ${PRIOR_CPU_PRESET.trainImages} train images
                       (default: cpu on a CPU device, gpu on a GPU; every other option replaces
                       only its own value: --steps 20 on a CPU device is the cpu preset with 20 steps)
${NUMERIC.map((k) => `  --${kebab(k)} N`).join('\n')}
  --resume             continue from runs/<name>/prior/checkpoints (only ${PRIOR_RESUMABLE.map((k) => '--' + kebab(k)).join(', ')} may change)
  --overwrite          replace an existing prior
  --progress auto|bar|lines|none
  -h, --help           this text`;
}

const stop = new AbortController();
async function main(): Promise<number> {
  let a;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { preset: { type: 'string' }, resume: { type: 'boolean' }, overwrite: { type: 'boolean' }, progress: { type: 'string' }, help: { type: 'boolean', short: 'h' } };
    for (const k of NUMERIC) options[kebab(k)] = { type: 'string' };
    a = parseArgs({ args: process.argv.slice(2), options, allowPositionals: true });
  } catch (e) {
    console.error(`prior: ${(e as Error).message}`);
    return 2;
  }
  if (a.values.help) {
    console.log(help());
    return 0;
  }
  if (a.positionals.length !== 1) {
    console.error('prior: give exactly one run folder, e.g. npm run prior -- runs/quick (see --help)');
    return 2;
  }
  const run = a.positionals[0];
  const given: Partial<PriorConfig> = {};
  for (const k of NUMERIC) {
    const v = a.values[kebab(k)];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n)) {
      console.error(`prior: --${kebab(k)} needs a number, got '${v}'`);
      return 2;
    }
    (given as Record<string, number>)[k] = n;
  }
  const preset = a.values.preset as string | undefined;
  if (preset !== undefined && preset !== 'gpu' && preset !== 'cpu') {
    console.error(`prior: --preset must be gpu or cpu, not '${preset}'`);
    return 2;
  }
  const relaunched = await relaunchWithoutDawnNoise();
  if (relaunched !== null) return relaunched;
  // first Ctrl-C / SIGTERM: finish the step, save, exit 130; a second one exits at once
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) process.exit(130);
    console.error(`\n${sig}: stopping after the current step (again to quit at once)`);
    stop.abort();
  };
  onStopSignals(onSignal);
  const r = await init();
  let cfg: PriorConfig;
  const saved = readJson<PriorConfig & { version: number }>(join(run, 'prior', 'config.json'));
  if (a.values.resume && saved) {
    const bad = (Object.keys(given) as (keyof PriorConfig)[]).filter((k) => !PRIOR_RESUMABLE.includes(k) && given[k] !== saved[k]);
    if (bad.length) {
      console.error(`prior: --resume: ${bad.map((k) => '--' + kebab(k)).join(', ')} cannot change in a resumed prior`);
      return 2;
    }
    const { version: _, ...rest } = saved;
    cfg = { ...(rest as PriorConfig), ...given, run };
  } else {
    // the preset is chosen once (--preset, else the device); each flag replaces only its own value
    const chosen = preset ?? (r.caps.isCpu ? 'cpu' : 'gpu');
    const base = chosen === 'cpu' ? PRIOR_CPU_PRESET : PRIOR_GPU_PRESET;
    cfg = { ...base, ...given, run };
    const why = preset ? 'from --preset' : `chosen for the ${r.caps.isCpu ? 'CPU' : 'GPU'} device ${r.caps.description}; --preset ${chosen === 'cpu' ? 'gpu' : 'cpu'} for the other`;
    const fromPreset = (['width', 'layers', 'batchSize', 'steps', 'lr', 'trainImages', 'validImages'] as (keyof PriorConfig)[]).filter((k) => !(k in given));
    console.log(`preset ${chosen} (${why})${fromPreset.length ? `: ${fromPreset.map((k) => `${kebab(k)} ${cfg[k]}`).join(', ')}` : ''}`);
    const flags = NUMERIC.filter((k) => k in given);
    console.log(`from flags: ${flags.length ? flags.map((k) => `--${kebab(k)} ${cfg[k]}`).join(', ') : 'none (every value from the preset)'}`);
  }
  if (!existsSync(run)) {
    console.error(`prior: ${run} does not exist (train a VQ-VAE first: npm run train)`);
    return 2;
  }
  const res = await trainPrior(cfg, { resume: !!a.values.resume, overwrite: !!a.values.overwrite, progress: (a.values.progress as ProgressMode | undefined) ?? 'auto', signal: stop.signal });
  return res.status === 'interrupted' ? 130 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`prior: ${e instanceof Error ? e.message : e}`);
    if (process.env.VQ_DEBUG && e instanceof Error) console.error(e.stack);
    process.exit(1);
  },
);
