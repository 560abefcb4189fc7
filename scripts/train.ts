// `npm run train -- [options]` (see --help). Exit codes: 0 finished, 130 interrupted (Ctrl-C or
// SIGTERM: the current step finishes and a checkpoint is saved), 1 error or divergence (a NaN
// or infinite loss; the last good checkpoint is kept), 2 bad arguments.
import { init } from '../engine/node.js';
import { checkpointConfig } from '../model/checkpoint_files.js';
import { ARCH_KEYS, type TrainConfig, parseTrainArgs, presetBanner, resolveTrainConfig, trainHelp } from '../train/config.js';
import { resumeConfig, train } from '../train/trainer.js';
import { onStopSignals, relaunchWithoutDawnNoise } from './cli.js';

const stop = new AbortController();
let signals = 0;

async function main(): Promise<number> {
  let cli;
  try {
    cli = parseTrainArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    return 2;
  }
  if (cli.help) {
    console.log(trainHelp());
    return 0;
  }
  const relaunched = await relaunchWithoutDawnNoise();
  if (relaunched !== null) return relaunched;

  // Ctrl-C / SIGTERM: finish the step, save, exit 130; a second one exits at once.
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      console.error(`\n${sig} again: exiting without saving`);
      process.exit(130);
    }
    console.error(`\n${sig}: finishing the current step and saving a checkpoint (${sig} again to quit at once)`);
    stop.abort();
  };
  onStopSignals(onSignal);

  const r = await init();
  let config;
  if (cli.resume) {
    config = resumeConfig(cli.resume, cli.given);
  } else {
    if (!cli.given.data && process.env.VQ_DATA) cli.given.data = process.env.VQ_DATA;
    // --init-from: the model's sizes come from the file unless flags give them
    let initArch: Partial<TrainConfig> | undefined;
    if (cli.given.initFrom) {
      const c = checkpointConfig(cli.given.initFrom);
      if (c.inChannels !== 3) throw new Error(`--init-from ${cli.given.initFrom}: its model takes ${c.inChannels}-channel images, not RGB`);
      initArch = Object.fromEntries(ARCH_KEYS.map((k) => [k, c[k]]));
    }
    const resolved = resolveTrainConfig(cli.given, { isCpu: r.caps.isCpu, initArch });
    config = resolved.config;
    console.log(presetBanner(resolved, r.caps));
  }
  if (signals > 0) return 130;
  const result = await train(config, {
    resume: cli.resume !== null,
    overwrite: cli.overwrite,
    progress: cli.progress,
    signal: stop.signal,
    meta: { command: ['npm run train --', ...process.argv.slice(2)].join(' ') },
  });
  if (result.status === 'interrupted') return 130;
  if (result.status === 'diverged') return 1;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`train: ${e instanceof Error ? e.message : e}`);
    if (process.env.VQ_DEBUG && e instanceof Error) console.error(e.stack);
    process.exit(signals > 0 ? 130 : 1); // e.g. Ctrl-C while the data were being prepared
  },
);
