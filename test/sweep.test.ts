// The sweep: the seed's grid, names, shards (flags, SLURM, Kubernetes), and a two-setting sweep
// run as two shards with a tiny model, merged into the summary (CSV, Markdown, overlaid
// curves that decode as PNG); a rerun skips finished settings. Under a scheduler: a run stopped
// in its final evaluation gets it on resume, diverged runs are not retried, locked ones are
// left to their owner, and the summary names unfinished and missing runs.
import t from 'tap';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { gpu } from './helpers.js';
import { tempDir } from './fixtures.js';
import { SEED_GRID, expandGrid, formatLr, resolveShard, runSweep, settingConfig, settingName, shardSettings, summarizeSweep, summaryLine } from '../train/sweep.js';
import { RunFiles, writeJsonAtomic } from '../train/runfiles.js';
import { parseTrainArgs } from '../train/config.js';
import { readMetrics } from '../train/metrics.js';

await gpu(t);

t.test('grid, names and shards', async (t) => {
  const all = expandGrid(SEED_GRID);
  t.equal(all.length, 36, "the seed's 3 x 4 x 3 grid");
  t.equal(all[0].name, 'K128-beta0.25-lr1e-3');
  t.equal(all[35].name, 'K512-beta1.75-lr1e-5');
  t.equal(new Set(all.map((s) => s.name)).size, 36, 'names are unique');
  t.equal(formatLr(1e-5), '1e-5');
  t.equal(formatLr(0.002), '2e-3');
  t.equal(formatLr(5e-4), '5e-4');
  t.equal(settingName({ codebookSize: 512, beta: 1.25, lr: 1e-3 }), 'K512-beta1.25-lr1e-3');

  for (const n of [1, 2, 5, 7, 36, 40]) {
    const parts = Array.from({ length: n }, (_, i) => shardSettings(all, { index: i, count: n }));
    t.same(parts.flat().map((s) => s.name).sort(), all.map((s) => s.name).sort(), `${n} shards cover every setting once`);
    t.ok(Math.max(...parts.map((p) => p.length)) - Math.min(...parts.map((p) => p.length)) <= 1, `${n} shards are balanced`);
  }
  t.match(resolveShard('2/4', {}), { index: 2, count: 4 });
  t.match(resolveShard(undefined, {}), { index: 0, count: 1 });
  t.match(resolveShard(undefined, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '6', SLURM_ARRAY_TASK_MIN: '1' }), { index: 4, count: 6 });
  t.match(resolveShard(undefined, { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '3' }), { index: 0, count: 3 });
  t.match(resolveShard(undefined, { JOB_COMPLETION_INDEX: '3' }, 8), { index: 3, count: 8 });
  t.match(resolveShard(undefined, { JOB_COMPLETION_INDEX: '1', SWEEP_SHARDS: '2' }), { index: 1, count: 2 });
  t.match(resolveShard('1/2', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '3' }), { index: 1, count: 2 }, '--shard wins');
  t.throws(() => resolveShard(undefined, { JOB_COMPLETION_INDEX: '1' }), /--shards N or SWEEP_SHARDS/);
  t.throws(() => resolveShard('4/4', {}), /not in 0..3/);
  t.throws(() => resolveShard('1-4', {}), /i\/n/);

  const cli = parseTrainArgs(['-K', '128,512', '--beta', '0.25', '--lr', '1e-3,1e-4', '--steps', '5'], { listKeys: ['codebookSize', 'beta', 'lr'] });
  t.same(cli.lists, { codebookSize: [128, 512], beta: [0.25], lr: [1e-3, 1e-4] });
  t.equal(cli.given.steps, 5);
  t.throws(() => parseTrainArgs(['--beta', '0.25,x'], { listKeys: ['beta'] }), /--beta must be a number/);

  // the preset comes from the base options: the grid's K does not switch off the CPU preset
  const { config, autoQuick } = settingConfig({}, all[0], '/tmp/sweep', true);
  t.equal(autoQuick, true);
  t.match(config, { preset: 'quick', codebookSize: 128, beta: 0.25, lr: 1e-3, name: 'K128-beta0.25-lr1e-3', runsDir: '/tmp/sweep', trainSubset: 55000, validSubset: 5500 });
  t.equal(settingConfig({}, all[0], '/tmp/sweep', false).config.batchSize, 256, 'seed settings on a GPU');
});

t.test('a two-setting sweep in two shards, merged into the summary', async (t) => {
  const dir = join(tempDir(t, 'vqvae-sweep-'), 'sweep');
  const base = {
    hidden: 16,
    residualHidden: 8,
    embeddingDim: 8,
    batchSize: 4,
    steps: 12,
    logEvery: 3,
    valEvery: 6,
    valImages: 8,
    checkpointEvery: 6,
    gridEvery: 100,
    evalImages: 8,
  };
  const grid = { codebookSize: [8, 16], beta: [1.25], lr: [3e-3] };
  const lines: string[] = [];
  const print = (s: string) => lines.push(s);
  const a = await runSweep({ base, grid, dir, shard: { index: 0, count: 2, source: 'test' }, isCpu: true, progress: 'none', print });
  t.same(a.outcomes.map((o) => [o.name, o.status]), [['K8-beta1.25-lr3e-3', 'finished']]);
  t.equal(a.summary.runs.length, 1, 'the summary merges what exists so far');
  const b = await runSweep({ base, grid, dir, shard: { index: 1, count: 2, source: 'test' }, isCpu: true, progress: 'none', print });
  t.same(b.outcomes.map((o) => [o.name, o.status]), [['K16-beta1.25-lr3e-3', 'finished']]);

  const s = b.summary;
  t.same(s.runs.map((r) => [r.name, r.codebook_size, r.state, r.step]), [
    ['K8-beta1.25-lr3e-3', 8, 'finished', 12],
    ['K16-beta1.25-lr3e-3', 16, 'finished', 12],
  ]);
  for (const r of s.runs) {
    const rows = readMetrics(join(dir, r.name, 'metrics.jsonl')).filter((m) => m.split === 'train');
    t.equal(r.train_loss, rows[rows.length - 1].loss, `${r.name}: train loss from its last row`);
    t.ok(r.best_valid_loss! > 0 && r.eval_psnr! > 0 && r.eval_codebook_usage! >= 1 && r.eval_split === 'test');
  }
  const csv = readFileSync(s.csvPath, 'utf8').trim().split('\n');
  t.equal(csv.length, 3);
  t.match(csv[0], /^name,codebook_size,beta,lr,state,step,steps,train_loss/);
  t.match(csv[2], /^K16-beta1\.25-lr3e-3,16,1\.25,0\.003,finished,12,12,/);
  const md = readFileSync(s.markdownPath, 'utf8');
  t.match(md, /\| K \| beta \| lr \| state \|/);
  t.match(md, /\| 8 \| 1\.25 \| 3e-3 \| finished \| 12 \|/);
  t.match(md, /\| 16 \| 1\.25 \| 3e-3 \| finished \| 12 \|/);
  t.same(s.figures.map((f) => f.slice(dir.length + 1)), ['figures/by-K-beta1.25-lr3e-3.png'], 'one overlay: K varied, beta and lr fixed');
  const png = PNG.sync.read(readFileSync(s.figures[0]));
  t.same([png.width, png.height], [1600, 520], 'loss and perplexity side by side');

  // a rerun skips finished settings; the summary alone can be rebuilt
  const again = await runSweep({ base, grid, dir, isCpu: true, progress: 'none', print });
  t.same(again.outcomes.map((o) => o.status), ['skipped', 'skipped']);
  t.equal(summarizeSweep(dir).runs.length, 2);
  t.match(lines.join('\n'), /shard 0\/2 \(test\) runs 1: K8-beta1\.25-lr3e-3/);
});

t.test('under a scheduler: a run stopped in its final evaluation, a diverged run, a locked one, a missing one', async (t) => {
  const dir = join(tempDir(t, 'vqvae-sweep-'), 'sweep');
  const base = { hidden: 16, residualHidden: 8, embeddingDim: 8, batchSize: 4, steps: 6, logEvery: 3, valEvery: 6, valImages: 8, checkpointEvery: 6, gridEvery: 100, evalImages: 8 };
  const lines: string[] = [];
  const print = (s: string) => lines.push(s);
  const [k8, k16, k32, k64] = ['K8-beta1.25-lr3e-3', 'K16-beta1.25-lr3e-3', 'K32-beta1.25-lr3e-3', 'K64-beta1.25-lr3e-3'];
  const first = await runSweep({ base, grid: { codebookSize: [8], beta: [1.25], lr: [3e-3] }, dir, isCpu: true, progress: 'none', print });
  t.same(first.outcomes.map((o) => o.status), ['finished']);

  // K8 killed during its final evaluation: all steps done, no eval.json
  const run8 = new RunFiles(join(dir, k8));
  const evalBefore = JSON.parse(readFileSync(run8.evalJson, 'utf8'));
  rmSync(run8.evalJson);
  run8.writeStatus({ state: 'interrupted', step: 6, steps: 6 });
  // K16 diverged; K32 held by a live task on another node; K64 never started
  const cfg16 = settingConfig(base, { codebookSize: 16, beta: 1.25, lr: 3e-3, name: k16 }, dir, true).config;
  const run16 = new RunFiles(join(dir, k16));
  run16.make();
  writeJsonAtomic(run16.config, cfg16);
  run16.writeStatus({ state: 'diverged', step: 3, steps: 6, message: 'stopped: the loss became NaN at step 3' });
  writeFileSync(join(dir, `${k32}.lock`), JSON.stringify({ token: 't', host: 'node17', pid: 4242, task: 'slurm 12_2', started: '2024-01-01T00:00:00Z' }));

  const grid = { codebookSize: [8, 16, 32, 64], beta: [1.25], lr: [3e-3] };
  const again = await runSweep({ base, grid, dir, shard: { index: 0, count: 2, source: 'test' }, isCpu: true, progress: 'none', print });
  t.same(again.outcomes.map((o) => [o.name, o.status]), [[k8, 'finished'], [k32, 'locked']]);
  t.match(again.outcomes[1].message, /locked by slurm 12_2, pid 4242 on node17/);
  const ev = JSON.parse(readFileSync(run8.evalJson, 'utf8'));
  t.equal(ev.step, 6, 'K8 got its final evaluation without training again');
  t.equal(ev.recon_mse, evalBefore.recon_mse, 'the same evaluation as before');
  t.equal(readMetrics(run8.metricsJsonl).filter((r) => r.split === 'train').at(-1)!.step, 6);
  t.ok(existsSync(join(dir, `${k32}.lock`)), "the other task's lock stays");
  t.notOk(existsSync(join(dir, `${k8}.lock`)), 'its own lock is released');

  const other = await runSweep({ base, grid, dir, shard: { index: 1, count: 2, source: 'test' }, isCpu: true, progress: 'none', print });
  t.same(other.outcomes.map((o) => [o.name, o.status]), [[k16, 'skipped'], [k64, 'finished']]);
  t.match(other.outcomes[0].message, /diverged at step 3 before; not retried/);

  // the merge names what is not finished and what is missing
  rmSync(join(dir, k64), { recursive: true });
  const s = summarizeSweep(dir, expandGrid(grid).map((x) => x.name));
  t.same(s.runs.map((r) => [r.name, r.state]), [[k8, 'finished'], [k16, 'diverged']]);
  t.same(s.unfinished.map((r) => r.name), [k16]);
  t.same(s.missing, [k32, k64]);
  const md = readFileSync(s.markdownPath, 'utf8');
  t.match(md, /2 runs \(1 finished of 4 settings\)/);
  t.match(md, `## Not finished\n\n- ${k16}: diverged at step 3/6 (stopped: the loss became NaN at step 3)`);
  t.match(md, `## Missing\n\nNo run folder yet: ${k32}, ${k64}.`);
  t.match(summaryLine(s), `not finished: ${k16} (diverged at step 3/6); missing: ${k32}, ${k64}`);
});
