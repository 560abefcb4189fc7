// `npm run sample -- runs/<name> [--n 64] [--temperature 1.0] [--seed S] [--out file.png]`:
// draws code maps from the run's PixelCNN prior (runs/<name>/prior/checkpoints/best, else the
// latest) and decodes them with the VQ-VAE the prior was trained on into a PNG grid.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { init } from '../engine/node.js';
import { tensor, tidy } from '../engine/tensor.js';
import { modelFromCheckpoint, modelPath } from '../model/checkpoint_files.js';
import { writeImageGrid } from '../train/data/index.js';
import { loadPriorCheckpoint } from '../train/prior.js';
import { RunFiles, readJson } from '../train/runfiles.js';
import { sampleCodes } from '../train/sample.js';
import { relaunchWithoutDawnNoise } from './cli.js';

function help(): string {
  return [
    'Usage: npm run sample -- RUN_DIR [options]',
    '',
    "Draws code maps from the run's PixelCNN prior (RUN_DIR/prior/checkpoints/best, else the",
    'latest; train one with npm run prior -- RUN_DIR) and decodes them with the VQ-VAE the prior',
    'was trained on into a PNG grid.',
    '',
    'Options:',
    '      --n N             code maps to draw (default 64)',
    '      --temperature T   softmax temperature (default 1; 0: always the likeliest code)',
    '      --seed S          random seed (default 0)',
    '      --out FILE        PNG path (default RUN_DIR/prior/samples-seed<S>-t<T>.png)',
    '  -h, --help            this text',
  ].join('\n');
}

async function main(): Promise<number> {
  let a;
  try {
    a = parseArgs({
      args: process.argv.slice(2),
      options: { n: { type: 'string' }, temperature: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`sample: ${(e as Error).message.replace(/\. To specify.*$/s, '')} (see --help)`);
    return 2;
  }
  if (a.values.help) {
    console.log(help());
    return 0;
  }
  if (a.positionals.length !== 1) {
    console.error('sample: give one run folder, e.g. npm run sample -- runs/my-run (see --help)');
    return 2;
  }
  const run = a.positionals[0];
  const n = Number(a.values.n ?? 64);
  const temperature = Number(a.values.temperature ?? 1);
  const seed = Number(a.values.seed ?? 0);
  if (!Number.isInteger(n) || n < 1) return bad(`--n must be a positive integer, got ${a.values.n}`);
  if (!(temperature >= 0)) return bad(`--temperature must be >= 0, got ${a.values.temperature}`);
  if (!Number.isInteger(seed) || seed < 0) return bad(`--seed must be a non-negative integer, got ${a.values.seed}`);
  const files = new RunFiles(join(run, 'prior'));
  const base = existsSync(modelPath(files.best)) ? files.best : files.latest()?.base;
  if (!base) return bad(`${run}/prior has no prior checkpoint: train one with npm run prior -- ${run}`);
  const pcfg = readJson<{ vqvaeCheckpoint: string }>(files.config);
  if (!pcfg) return bad(`${files.config} is missing`);
  const relaunched = await relaunchWithoutDawnNoise();
  if (relaunched !== null) return relaunched;
  await init();
  const { model: prior } = await loadPriorCheckpoint(base);
  const { model: vqvae } = await modelFromCheckpoint(pcfg.vqvaeCheckpoint);
  const [h, w] = vqvae.latentSize(64, 64);
  console.log(`sampling ${n} code maps (${h}x${w}, K ${prior.config.numCodes}) from ${modelPath(base)}, temperature ${temperature}, seed ${seed}`);
  const t0 = performance.now();
  const codes = await sampleCodes(prior, n, h, w, {
    temperature,
    seed,
    onRow: (d, rows) => {
      if (process.stderr.isTTY) process.stderr.write(`\r${d}/${rows} rows`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  const imgs = tidy(() => vqvae.decode(tensor(codes, [n, h, w], 'u32')));
  const out = a.values.out ?? join(run, 'prior', `samples-seed${seed}-t${temperature}.png`);
  writeImageGrid(out, (await imgs.read()) as Float32Array, n, Math.ceil(Math.sqrt(n)));
  console.log(`wrote ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s (training maps for comparison: ${join(run, 'prior', 'train-codes.png')})`);
  return 0;
}

function bad(msg: string): number {
  console.error(`sample: ${msg}`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`sample: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  },
);
