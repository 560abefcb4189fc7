// `npm run eval -- runs/<name> [--split test] [--checkpoint latest|best|PATH] [--images N]`:
// reconstruction MSE, PSNR, perplexity and codebook usage over a whole split, as JSON
// (runs/<name>/eval-<split>-<checkpoint>.json) and a printed table, plus a grid PNG of
// originals over reconstructions.
import { parseArgs } from 'node:util';
import { init } from '../engine/node.js';
import { evaluateRun, evalHelp } from '../train/evalrun.js';
import { relaunchWithoutDawnNoise } from './cli.js';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      options: {
        split: { type: 'string', short: 's' },
        checkpoint: { type: 'string' },
        images: { type: 'string' },
        'batch-size': { type: 'string', short: 'b' },
        out: { type: 'string', short: 'o' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    console.error(`eval: ${(e as Error).message.replace(/\. To specify.*$/s, '')} (see --help)`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(evalHelp());
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    console.error('eval: give one run folder, e.g. npm run eval -- runs/my-run (see --help)');
    return 2;
  }
  const num = (s: string | undefined, flag: string): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be an integer >= 0, got '${s}'`);
    return n;
  };
  const split = v.split ?? 'test';
  if (!['train', 'valid', 'test'].includes(split)) {
    console.error(`eval: --split must be train, valid or test, got '${split}'`);
    return 2;
  }
  const relaunched = await relaunchWithoutDawnNoise();
  if (relaunched !== null) return relaunched;
  await init();
  const out = await evaluateRun(parsed.positionals[0], {
    split: split as 'train' | 'valid' | 'test',
    checkpoint: v.checkpoint ?? 'latest',
    images: num(v.images, '--images'),
    batchSize: num(v['batch-size'], '--batch-size'),
    out: v.out,
    print: v.json ? () => {} : (s) => console.log(s),
  });
  if (v.json) console.log(JSON.stringify(out.result, null, 2));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`eval: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
