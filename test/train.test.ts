// The trainer end to end with a tiny model: options and presets, charts, training on a
// generated image folder (prepared first; the loss falls; the run folder is complete; PNGs
// decode), exact resume (N + resume + N steps == 2N steps, bit for bit, also with the EMA
// codebook and dead-code restarts), the divergence stop, evaluation of a run, and Ctrl-C on
// the command line (a child process: the step finishes, a checkpoint is saved, exit 130).
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { gpu } from './helpers.js';
import { withFlags } from '../engine/flags.js';
import { encodePngFile, fixtureRgba, tempDir } from './fixtures.js';
import { loadCheckpoint, modelPath, trainPath } from '../model/checkpoint_files.js';
import { VqVae } from '../model/vqvae.js';
import { type TrainConfig, modelConfig, parseTrainArgs, presetBanner, readConfigFile, resolveTrainConfig, trainHelp, QUICK_PRESET } from '../train/config.js';
import { readMetrics, type MetricRow } from '../train/metrics.js';
import { formatTick, logTicks, niceTicks, renderCharts } from '../train/plot.js';
import { GLYPH_H, glyph, hasGlyph, textWidth } from '../train/font.js';
import { RunFiles } from '../train/runfiles.js';
import { lrAt, resumeConfig, train } from '../train/trainer.js';
import { evaluateRun } from '../train/evalrun.js';
import { histogramStats } from '../train/evaluate.js';
import { Progress } from '../train/progress.js';

const r = await gpu(t);

/** A tiny model and schedule (every option set, as the CLI would resolve them). */
function tiny(runsDir: string, name: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return resolveTrainConfig(
    {
      name,
      runsDir,
      preset: 'seed',
      hidden: 16,
      residualHidden: 8,
      codebookSize: 16,
      embeddingDim: 8,
      batchSize: 4,
      steps: 24,
      lr: 3e-3,
      logEvery: 4,
      valEvery: 12,
      valImages: 8,
      checkpointEvery: 8,
      gridEvery: 12,
      evalImages: 8,
      ...over,
    },
    { isCpu: true },
  ).config;
}

function decodePng(path: string): PNG {
  return PNG.sync.read(readFileSync(path));
}

const quiet = { progress: 'none' as const, print: () => {} };

// ---------------------------------------------------------------------------------------------

t.test('options: seed defaults, the automatic CPU preset, flags over the config file, errors', async (t) => {
  const seedCfg = () => resolveTrainConfig({}, { isCpu: false }).config;
  const seed = seedCfg();
  t.match(seed, { preset: 'seed', batchSize: 256, steps: 10000, lr: 1e-3, beta: 1.25, codebookSize: 512, embeddingDim: 64, hidden: 128, ema: false, preprocess: 'squash' });
  const cpu = resolveTrainConfig({}, { isCpu: true });
  t.equal(cpu.autoQuick, true, 'a CPU device with no size options gets the quick preset');
  t.match(cpu.config, { preset: 'quick', hidden: QUICK_PRESET.hidden, batchSize: QUICK_PRESET.batchSize, steps: QUICK_PRESET.steps, codebookSize: 512 });
  // the preset is chosen once; a flag replaces only its own value
  const sized = resolveTrainConfig({ steps: 40 }, { isCpu: true });
  t.equal(sized.autoQuick, true, '--steps on a CPU device keeps the quick preset');
  t.match(sized.config, { preset: 'quick', steps: 40, batchSize: QUICK_PRESET.batchSize, hidden: QUICK_PRESET.hidden });
  t.same(sized.given, ['steps']);
  t.match(resolveTrainConfig({ codebookSize: 128, hidden: 32 }, { isCpu: true }).config, { preset: 'quick', codebookSize: 128, hidden: 32, batchSize: 8 }, 'sizes too');
  t.match(resolveTrainConfig({ steps: 40 }, { isCpu: false }).config, { preset: 'seed', steps: 40, batchSize: 256 }, 'a GPU: the seed preset with 40 steps');
  t.equal(resolveTrainConfig({ preset: 'seed' }, { isCpu: true }).config.batchSize, 256, '--preset seed on a CPU device');
  const banner = presetBanner(sized, { isCpu: true, description: 'llvmpipe' });
  t.match(banner, /^preset quick \(chosen for the CPU device llvmpipe; --preset seed for the seed's settings\): hidden 64, batch-size 8, lr 2e-3/);
  t.match(banner, /from flags: --steps 40$/m);
  t.notMatch(banner, /steps 1000/, 'a value from a flag is not listed as the preset\'s');
  t.match(presetBanner(resolveTrainConfig({ preset: 'seed' }, { isCpu: true }), { isCpu: true, description: 'x' }), /^preset seed \(from --preset\).*\nfrom flags: none/);
  // --init-from's sizes come between the preset and the flags
  const init = resolveTrainConfig({ hidden: 32 }, { isCpu: true, initArch: { hidden: 128, codebookSize: 512, embeddingDim: 64, residualHidden: 32, residualBlocks: 2 } });
  t.match(init.config, { preset: 'quick', hidden: 32, codebookSize: 512, batchSize: 8 });
  t.same(init.fromInit, ['residualHidden', 'residualBlocks', 'codebookSize', 'embeddingDim']);
  t.equal(seedCfg().sampling, 'reshuffle', "the seed preset draws batches as the seed does (next(iter(loader)))");
  t.equal(cpu.config.sampling, 'shuffle', 'the quick preset: shuffled epochs');
  t.match(resolveTrainConfig({}, { isCpu: false, now: new Date(2024, 0, 2, 3, 4, 5) }).config.name, 'seed-20240102-030405');

  const dir = tempDir(t, 'vqvae-train-');
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ 'batch-size': 16, lr: 0.01, codebookSize: 64, ema: true }));
  const cli = parseTrainArgs(['--config', file, '--lr', '5e-4', '-K', '32', '--steps', '9', '--progress', 'lines']);
  t.match(cli.given, { batchSize: 16, lr: 5e-4, codebookSize: 32, ema: true, steps: 9 }, 'flags override the file');
  t.equal(cli.progress, 'lines');
  t.equal(parseTrainArgs(['--config', file, '--no-ema']).given.ema, false);
  t.throws(() => parseTrainArgs(['--bogus']), /bogus/);
  t.throws(() => parseTrainArgs(['--steps', '0']), /--steps must be a positive integer, got "0"/);
  t.throws(() => parseTrainArgs(['--lr', 'fast']), /--lr must be a number/);
  t.throws(() => parseTrainArgs(['--preprocess', 'stretch']), /squash, crop148/);
  writeFileSync(file, JSON.stringify({ hidden: -3 }));
  t.throws(() => parseTrainArgs(['--config', file]), /hidden must be a positive integer/);
  t.throws(() => resolveTrainConfig({ name: '../x' }, { isCpu: false }), /plain folder name/);
  t.same([0, 5, 10].map((s) => lrAt({ lr: 2, lrSchedule: 'cosine', steps: 10 }, s)), [2, 1, 0], 'cosine decay');
  t.equal(lrAt({ lr: 2, lrSchedule: 'constant', steps: 10 }, 7), 2);
  t.equal(cpu.config.lrSchedule, 'cosine');
  t.equal(seed.lrSchedule, 'constant', "the seed's constant rate");
  const help = trainHelp();
  for (const flag of ['--data', '--steps', '--batch-size', '--lr', '--beta', '--codebook-size', '--ema', '--name', '--resume', '--config', '--preset']) t.match(help, flag);
});

t.test('charts: ticks, labels, font, and a PNG with the series drawn', async (t) => {
  t.same(niceTicks(0, 10000, 5), [0, 2000, 4000, 6000, 8000, 10000]);
  t.same(niceTicks(0.3, 1.2, 4), [0.5, 0.75, 1]);
  const lt = logTicks(0.0015, 0.2);
  t.same(lt.major, [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]);
  t.ok(lt.minor.includes(0.003) && lt.minor.includes(0.09));
  t.same(logTicks(1e-5, 1).major, [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1], 'wide ranges: decades only');
  t.equal(formatTick(0.001, true), '1e-3');
  t.equal(formatTick(0.05, true), '5e-2');
  t.equal(formatTick(20000), '20k');
  t.equal(formatTick(2500), '2500');
  t.equal(formatTick(0.25), '0.25');
  for (const ch of 'Loss by K (beta=1.25, lr=1e-3): 0123456789 perplexity/codes [valid] 50%') t.ok(hasGlyph(ch), `glyph '${ch}'`);
  t.same(glyph('\u00e9'), glyph('?'), 'unknown characters draw as ?');
  t.equal(glyph('g').length, GLYPH_H);
  t.equal(textWidth('ab', 2), 22);

  const x = Array.from({ length: 50 }, (_, i) => i * 10);
  const cv = renderCharts(
    [
      { title: 'loss', logY: true, xLabel: 'step', yLabel: 'loss', series: [{ label: 'a', x, y: x.map((s) => 0.1 * Math.exp(-s / 100) + 1e-3), color: [255, 0, 0] }] },
      { title: 'empty', series: [] },
    ],
    { columns: 2, width: 400, height: 300 },
  );
  const png = PNG.sync.read(cv.png());
  t.equal(png.width, 800);
  t.equal(png.height, 300);
  let red = 0;
  for (let i = 0; i < png.width * png.height; i++) {
    const [pr, pg, pb] = [png.data[i * 4], png.data[i * 4 + 1], png.data[i * 4 + 2]];
    if (pr > 200 && pg < 60 && pb < 60 && i % png.width < 400) red++;
  }
  t.ok(red > 200, `the red series is drawn in the first chart (${red} pixels)`);
  t.same(histogramStats([0, 0, 0]), { perplexity: 1, used: 0 });
  t.equal(Math.round(histogramStats([5, 5, 5, 5, 0]).perplexity * 1e6) / 1e6, 4, 'uniform over 4 codes: perplexity 4');

  const out: string[] = [];
  const p = new Progress('lines', process.stderr, { write: (s: string) => out.push(s) });
  p.log({ step: 50, total: 200, elapsed: 65, rate: 2, loss: 0.0123, recon: 0.01, perplexity: 12.34, usage: 9, codebookSize: 16, imagesPerSecond: 8 });
  t.match(out[0], /^step 50\/200 \(25%\)  loss 0\.01230 .* ppl 12\.3  usage 9\/16  8\.0 img\/s  elapsed 01:05  eta 01:15/);
});

// ---------------------------------------------------------------------------------------------

const root = tempDir(t, 'vqvae-train-');
const images = join(root, 'images');
mkdirSync(images);
for (let i = 0; i < 56; i++) writeFileSync(join(images, `face${String(i).padStart(3, '0')}.png`), encodePngFile(fixtureRgba(i, 80, 72), 80, 72));
const runs = join(root, 'runs');
const folderData = { data: images, cacheDir: join(root, 'cache') };

t.test('end to end on an image folder: prepare, train, a complete run folder', async (t) => {
  const lines: string[] = [];
  const cfg = tiny(runs, 'e2e', { ...folderData, steps: 40, logEvery: 4, valEvery: 20, gridEvery: 20, checkpointEvery: 20 });
  const res = await train(cfg, { progress: 'none', print: (s) => lines.push(s) });
  t.equal(res.status, 'finished');
  t.equal(res.step, 40);
  const f = new RunFiles(res.runDir);
  t.match(lines.join('\n'), /folder .*images.*50 train \/ 3 valid \/ 3 test/s, 'prepared the folder (90/5/5 split)');
  for (const p of [f.config, f.status, f.metricsJsonl, f.metricsCsv, f.lossPng, f.perplexityPng, f.evalJson, f.log, f.reconPath(20), f.reconPath(40), f.reconPath('final'), modelPath(f.best), f.latestPointer]) {
    t.ok(existsSync(p), `${p.slice(root.length)} exists`);
  }
  for (const p of [f.lossPng, f.perplexityPng, f.reconPath('final'), f.reconPath(20)]) t.ok(decodePng(p).width > 100, `${p.slice(root.length)} decodes`);
  const grid = decodePng(f.reconPath('final'));
  t.same([grid.width, grid.height], [3 * 128 + 4 * 2, 2 * 128 + 3 * 2], '3 valid images over their reconstructions at 2x');

  const rows = readMetrics(f.metricsJsonl);
  const tr = rows.filter((r) => r.split === 'train');
  const va = rows.filter((r) => r.split === 'valid');
  t.same(tr.map((r) => r.step), [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]);
  t.same(va.map((r) => r.step), [20, 40]);
  const first = (tr[0].loss + tr[1].loss) / 2;
  const last = (tr[tr.length - 1].loss + tr[tr.length - 2].loss) / 2;
  t.ok(last < 0.7 * first, `the loss falls: ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  for (const row of tr) {
    t.ok(Math.abs(row.loss - (row.recon_mse + row.codebook_loss + row.commitment_loss)) < 1e-5 * row.loss + 1e-7, `step ${row.step}: loss = sum of its terms`);
    t.ok(row.perplexity >= 1 && row.perplexity <= 16 && row.codebook_usage >= 1 && row.codebook_usage <= 16, 'perplexity and usage in range');
    t.ok(row.lr === cfg.lr && row.images_per_s! > 0 && row.elapsed_s! > 0);
    t.ok(Math.abs(row.psnr - 10 * Math.log10(1 / row.recon_mse)) < 1e-9);
  }
  const csv = readFileSync(f.metricsCsv, 'utf8').trim().split('\n');
  t.equal(csv[0], 'step,split,loss,recon_mse,codebook_loss,commitment_loss,perplexity,codebook_usage,psnr,lr,images_per_s,elapsed_s');
  t.equal(csv.length, rows.length + 1, 'one CSV line per JSONL row');

  const saved = readConfigFile(f.config);
  t.match(saved, { name: 'e2e', steps: 40, hidden: 16, codebookSize: 16, data: images });
  const meta = JSON.parse(readFileSync(f.config, 'utf8'));
  t.match(meta, { adapter: r.caps.description, parameters: Number });
  t.match(JSON.parse(readFileSync(f.status, 'utf8')), { state: 'finished', step: 40 });
  const ev = JSON.parse(readFileSync(f.evalJson, 'utf8'));
  t.match(ev, { split: 'test', images: 3, step: 40, codebook_size: 16 });
  t.ok(ev.psnr > 5 && ev.psnr < 60 && ev.perplexity >= 1 && ev.codebook_usage >= 1);
  t.same(f.stepCheckpoints().map((c) => c.step), [40, 20], 'step checkpoints kept: the newest 2');
  t.equal(f.latest()?.step, 40);
  t.same(readFileSync(f.latestModel), readFileSync(modelPath(f.latest()!.base)), 'latest.safetensors is the latest model');

  // the checkpoint holds the final weights, loadable into a fresh model
  const m = new VqVae(modelConfig(cfg));
  const info = await loadCheckpoint(f.latest()!.base, m);
  t.equal(info.step, 40);
  t.match(info.train, { version: 1, loader: { batches: 40 } });
  m.dispose();

  // evaluation of the run (whole split, JSON and PNG)
  const out: string[] = [];
  const e = await evaluateRun(res.runDir, { split: 'valid', checkpoint: 'best', print: (s) => out.push(s) });
  t.equal(e.result.images, 3);
  t.ok(existsSync(e.json) && decodePng(e.png).width > 0, 'eval JSON and grid written');
  t.match(JSON.parse(readFileSync(e.json, 'utf8')), { split: 'valid', step: 40, images: 3 });
  t.match(out.join('\n'), /PSNR\s+\d+\.\d+ dB/);
  const again = await evaluateRun(res.runDir, { split: 'valid', checkpoint: 'latest', print: () => {} });
  t.equal(again.result.recon_mse, e.result.recon_mse, 'best (step 40) and latest (step 40) agree');
  await t.rejects(evaluateRun(join(root, 'nope')), /not a run folder/);

  await t.rejects(train(cfg, quiet), /already exists: resume it with --resume/, 'an existing run is not overwritten by accident');
});

/** Per-step losses of a run (logEvery 1) as exact float32 values. */
function stepLosses(dir: string): number[][] {
  return readMetrics(join(dir, 'metrics.jsonl'))
    .filter((r: MetricRow) => r.split === 'train')
    .map((r) => [r.step, r.loss, r.recon_mse, r.codebook_loss, r.commitment_loss, r.perplexity]);
}

for (const variant of ['codebook loss', 'EMA codebook with restarts'] as const) {
  t.test(`exact resume (${variant}): N steps + resume + N steps == 2N steps`, async (t) => {
    const over: Partial<TrainConfig> = {
      steps: 20,
      logEvery: 1,
      valEvery: 10,
      checkpointEvery: 7,
      gridEvery: 100,
      evalImages: 4,
      ...(variant === 'EMA codebook with restarts' ? { ema: true, deadCodeThreshold: 0.5 } : {}),
    };
    const full = await train(tiny(runs, `full-${over.ema ? 'ema' : 'cb'}`, over), quiet);
    const half = await train(tiny(runs, `half-${over.ema ? 'ema' : 'cb'}`, { ...over, steps: 10 }), quiet);
    t.equal(half.status, 'finished');
    const cfg = resumeConfig(half.runDir, { steps: 20 });
    t.equal(cfg.steps, 20);
    const resumed = await train(cfg, { ...quiet, resume: true });
    t.equal(resumed.step, 20);
    const a = stepLosses(full.runDir);
    const b = stepLosses(half.runDir);
    t.equal(a.length, 20);
    t.same(b, a, 'identical per-step losses and perplexities, bit for bit');
    t.ok(a[19][1] < a[0][1], 'and it trained');
    const va = readMetrics(join(full.runDir, 'metrics.jsonl')).filter((r) => r.split === 'valid').map((r) => r.loss);
    const vb = readMetrics(join(half.runDir, 'metrics.jsonl')).filter((r) => r.split === 'valid').map((r) => r.loss);
    t.same(vb, va, 'identical validation losses');
    const ea = JSON.parse(readFileSync(join(full.runDir, 'eval.json'), 'utf8'));
    const eb = JSON.parse(readFileSync(join(half.runDir, 'eval.json'), 'utf8'));
    t.equal(eb.recon_mse, ea.recon_mse, 'identical final evaluation');
    // Every step above after the first was replayed from a recording; op by op gives the same bits.
    const eager = await withFlags({ replayStep: false }, () => train(tiny(runs, `eager-${over.ema ? 'ema' : 'cb'}`, over), quiet));
    t.same(stepLosses(eager.runDir), a, 'the replayed steps equal the op-by-op steps, bit for bit');
  });
}

t.test('f16 training: loss scaling, the scaler state in checkpoints, exact resume', async (t) => {
  if (!r.caps.shaderF16) {
    t.throws(() => tiny(runs, 'f16-none', { precision: 'f16' }), /--precision f16 needs a device with shader-f16/);
    return;
  }
  const over: Partial<TrainConfig> = { precision: 'f16', steps: 12, logEvery: 1, valEvery: 6, checkpointEvery: 5, gridEvery: 100, evalImages: 4 };
  const lines: string[] = [];
  const full = await train(tiny(runs, 'f16-full', over), { progress: 'none', print: (s) => lines.push(s) });
  t.equal(full.status, 'finished');
  t.match(lines.join('\n'), /f16 with loss scaling/);
  const a = stepLosses(full.runDir);
  t.ok(a.every((row) => row.every(Number.isFinite)), 'finite losses');
  const f32 = await train(tiny(runs, 'f16-vs-f32', { ...over, precision: 'f32' }), quiet);
  const b = stepLosses(f32.runDir);
  t.ok(Math.abs(a[11][1] - b[11][1]) / b[11][1] < 0.05, `f16 loss ${a[11][1]} near f32's ${b[11][1]}`);
  const half = await train(tiny(runs, 'f16-half', { ...over, steps: 6 }), quiet);
  const m = new VqVae(modelConfig(tiny(runs, 'f16-half', over)));
  const info = await loadCheckpoint(new RunFiles(half.runDir).latest()!.base, m);
  m.dispose();
  t.match(info.train?.lossScale, { scale: 65536, skippedSteps: 0, steps: 6 }, 'the scaler state is in the checkpoint');
  await train(resumeConfig(half.runDir, { steps: 12 }), { ...quiet, resume: true });
  t.same(stepLosses(half.runDir), a, 'f16: 6 steps + resume + 6 steps == 12 steps, bit for bit');
});

t.test('resume refuses changed options and reports a finished run', async (t) => {
  t.throws(() => resumeConfig(join(runs, 'half-cb'), { beta: 0.5, hidden: 16 }), /cannot change in a resumed run: --beta \(run: 1.25, given: 0.5\)\. Only --steps, --lr/);
  t.equal(resumeConfig(join(runs, 'half-cb'), { lr: 1e-4 }).lr, 1e-4, 'the learning rate may change');
  t.throws(() => resumeConfig(join(runs, 'missing')), /no config.json/);
  const done = await train(resumeConfig(join(runs, 'half-cb')), { ...quiet, resume: true });
  t.equal(done.status, 'finished');
  t.match(done.message, /already complete at step 20/);
});

t.test('a NaN loss stops the run and keeps the last good checkpoint', async (t) => {
  const lines: string[] = [];
  const cfg = tiny(runs, 'nan', { steps: 40, logEvery: 5, checkpointEvery: 5, valEvery: 100, gridEvery: 100 });
  const res = await train(cfg, { progress: 'none', print: (s) => lines.push(s), injectNanAtStep: 13 });
  t.equal(res.status, 'diverged');
  t.match(res.message, /the loss became NaN at step 13/);
  t.match(res.message, /last good checkpoint is .*step-000010 \(step 10\); continue from it with a lower rate: --resume .*nan --lr 0.0015/);
  const f = new RunFiles(res.runDir);
  t.equal(f.latest()?.step, 10, 'the latest checkpoint is from before the NaN');
  t.same(f.stepCheckpoints().map((c) => c.step), [10, 5]);
  t.match(JSON.parse(readFileSync(f.status, 'utf8')), { state: 'diverged', step: 15 });
  t.same(readMetrics(f.metricsJsonl).map((r) => r.step), [5, 10], 'no rows from the bad interval');
  const m = new VqVae(modelConfig(cfg));
  t.equal((await loadCheckpoint(f.latest()!.base, m)).step, 10, 'the kept checkpoint loads (finite weights)');
  m.dispose();
  t.ok(existsSync(f.lossPng));
  const lines2: string[] = [];
  const again = await train(resumeConfig(f.dir, { lr: 1e-3, steps: 20 }), { progress: 'none', print: (s) => lines2.push(s), resume: true });
  t.equal(again.status, 'finished', 'it continues from the kept checkpoint');
  t.match(lines2.join('\n'), /resuming .* at step 10\/20/);
  t.match(lines2.join('\n'), /learning rate 0.003 -> 0.001/);
  t.same(readMetrics(f.metricsJsonl).filter((r) => r.split === 'train').map((r) => [r.step, r.lr]), [[5, 0.003], [10, 0.003], [15, 0.001], [20, 0.001]]);
});

t.test('Ctrl-C on the command line: the step finishes, a checkpoint is saved, exit 130', async (t) => {
  const name = 'sigint';
  const args = ['--import', 'tsx', 'scripts/train.ts', '--runs-dir', runs, '--name', name, '--hidden', '16', '--residual-hidden', '8', '-K', '16', '-D', '8', '-b', '4', '--steps', '100000', '--log-every', '2', '--val-every', '1000', '--val-images', '8', '--grid-every', '1000', '--checkpoint-every', '1000', '--progress', 'lines'];
  const child = spawn(process.execPath, args, { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no progress line within 90 s; stderr: ${stderr}`)), 90_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (/step 4\/100000/.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.kill('SIGINT');
  const code = await exit;
  t.equal(code, 130, `exit code 130 (stderr: ${stderr.slice(-300)})`);
  t.match(stderr, /SIGINT: finishing the current step and saving a checkpoint/);
  t.match(stdout, /CPU device detected|run /);
  t.match(stdout, /interrupted at step \d+\/100000; checkpoint saved: resume with --resume/);
  const f = new RunFiles(join(runs, name));
  const latest = f.latest();
  t.ok(latest && latest.step >= 4, `a checkpoint at step ${latest?.step}`);
  t.ok(existsSync(trainPath(latest!.base)), 'with its train state');
  t.match(JSON.parse(readFileSync(f.status, 'utf8')), { state: 'interrupted', step: latest!.step });
  const rows = readMetrics(f.metricsJsonl);
  t.equal(rows[rows.length - 1].step, latest!.step, 'the rows reach the saved step (none lost, none beyond)');
  // and it continues from there
  const res = await train(resumeConfig(f.dir, { steps: latest!.step + 3, evalImages: 4 }), { ...quiet, resume: true });
  t.equal(res.status, 'finished');
  t.equal(res.step, latest!.step + 3);
});
