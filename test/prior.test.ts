// The prior end to end on fixture codes: the loss falls, seeded sampling is reproducible and
// follows the learnt pattern, checkpoints round-trip, and the bits arithmetic; and trainPrior
// on a tiny VQ-VAE run through the shared run loop resumes exactly.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { crossEntropy } from '../engine/cross_entropy.js';
import { Adam } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { tensor, tidy } from '../engine/tensor.js';
import { PixelCnn } from '../model/pixelcnn.js';
import { IMAGE_DIMS, PRIOR_CPU_PRESET, type PriorRow, loadPriorCheckpoint, nllBits, priorNll, savePriorCheckpoint, trainPrior } from '../train/prior.js';
import { resolveTrainConfig } from '../train/config.js';
import { readMetrics } from '../train/metrics.js';
import { train } from '../train/trainer.js';

const quiet = { progress: 'none' as const, print: () => {} };
import { sampleCodes, sampleUniforms } from '../train/sample.js';

await gpu(t);

const K = 6;
const [H, W] = [4, 5];
/** Maps whose first code is random and every later one is the previous (raster order) + 1 mod K. */
function fixture(n: number, rng: Rng): Uint32Array {
  const c = new Uint32Array(n * H * W);
  for (let s = 0; s < n; s++) {
    const start = rng.int(K);
    for (let p = 0; p < H * W; p++) c[s * H * W + p] = (start + p) % K;
  }
  return c;
}
/** Fraction of non-first positions that follow the fixture's rule. */
function ruleFraction(c: Uint32Array, n: number): number {
  let ok = 0;
  for (let s = 0; s < n; s++) for (let p = 1; p < H * W; p++) if (c[s * H * W + p] === (c[s * H * W + p - 1] + 1) % K) ok++;
  return ok / (n * (H * W - 1));
}

t.test('bits per code and per image dimension', async (t) => {
  const b = nllBits(Math.log(512), 256);
  t.equal(b.bitsPerCode.toFixed(10), (9).toFixed(10), 'uniform over 512 codes is 9 bits per code');
  t.equal(b.bitsPerDim.toFixed(10), ((9 * 256) / (3 * 64 * 64)).toFixed(10), 'a 16x16 map of 9-bit codes over 3x64x64 values');
  t.equal(IMAGE_DIMS, 12288);
  t.equal(nllBits(Math.LN2, 10, 20).bitsPerDim, 0.5);
});

t.test('the uniforms of the draws are seeded f32s in [0, 1)', async (t) => {
  t.same(sampleUniforms(new Rng(4), 5), sampleUniforms(new Rng(4), 5));
  const u = sampleUniforms(new Rng(1), 20000);
  t.ok(u.every((v) => v >= 0 && v < 1), 'all in [0, 1)');
  const mean = u.reduce((s, v) => s + v, 0) / u.length;
  t.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean} close to 1/2`);
});

t.test('tiny prior: loss falls, samples are seeded and learn the pattern, checkpoint round-trips', async (t) => {
  const rng = new Rng(7);
  const model = new PixelCnn({ numCodes: K, width: 16, layers: 1, firstKernel: 3, kernel: 3, headWidth: 16 }, { seed: 1 });
  const opt = new Adam(model.parameters(), { lr: 1e-2 });
  const valid = fixture(16, new Rng(99));
  const before = await priorNll(model, valid, 16, H, W, 8);
  t.ok(Math.abs(before - Math.log(K)) < 1, `initial NLL ${before} near ln K = ${Math.log(K)}`);
  for (let step = 0; step < 60; step++) {
    const batch = fixture(8, rng);
    tidy(() => {
      const c = tensor(batch, [8, H, W], 'u32');
      backward(crossEntropy(model.forward(c), c));
    });
    opt.step();
    opt.zeroGrad();
  }
  const after = await priorNll(model, valid, 16, H, W, 8);
  // the best possible: ln K for the first code, 0 for the others
  t.ok(after < 0.5 * before, `validation NLL fell from ${before.toFixed(3)} to ${after.toFixed(3)} nats/code (floor ${(Math.log(K) / (H * W)).toFixed(3)})`);

  const a = await sampleCodes(model, 4, H, W, { seed: 3 });
  const b = await sampleCodes(model, 4, H, W, { seed: 3 });
  const c = await sampleCodes(model, 4, H, W, { seed: 4 });
  t.same(a, b, 'same seed, same maps');
  t.notSame(a, c, 'another seed, other maps');
  t.ok(a.every((v) => v < K));
  const frac = ruleFraction(a, 4);
  t.ok(frac > 0.8, `samples follow the learnt rule at ${(100 * frac).toFixed(0)}% of positions`);
  const greedy = await sampleCodes(model, 2, H, W, { temperature: 0, seed: 1 });
  t.same(greedy, await sampleCodes(model, 2, H, W, { temperature: 0, seed: 2 }), 'temperature 0 is the argmax, whatever the seed');
  await t.rejects(sampleCodes(model, 0, H, W), /n must be a positive integer/);

  const dir = mkdtempSync(join(tmpdir(), 'prior-'));
  try {
    await savePriorCheckpoint(join(dir, 'p'), model, { step: 60, optimizer: opt, train: { hello: 1 } });
    const loaded = await loadPriorCheckpoint(join(dir, 'p'), (m) => new Adam(m.parameters(), { lr: 1e-2 }));
    t.equal(loaded.info.step, 60);
    t.same(loaded.info.train, { hello: 1 });
    t.same(loaded.model.config, model.config);
    t.equal(await priorNll(loaded.model, valid, 16, H, W, 8), after, 'same NLL after loading');
    t.equal(loaded.optimizer!.stepCount, 60);
    loaded.optimizer!.dispose();
    loaded.model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  opt.dispose();
  model.dispose();
});

t.test('trainPrior through the shared run loop: N steps + resume + N steps == 2N steps, bit for bit', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'prior-loop-'));
  try {
    const vq = resolveTrainConfig(
      { name: 'vq', runsDir: root, preset: 'seed', hidden: 16, residualHidden: 8, residualBlocks: 1, codebookSize: 8, embeddingDim: 4, batchSize: 4, steps: 2, logEvery: 1, valEvery: 2, valImages: 4, checkpointEvery: 2, gridEvery: 100, evalImages: 4 },
      { isCpu: true },
    ).config;
    const run = (await train(vq, quiet)).runDir;
    const prior = { ...PRIOR_CPU_PRESET, run, width: 8, layers: 1, headWidth: 8, batchSize: 4, trainImages: 12, validImages: 4, logEvery: 1, valEvery: 3, checkpointEvery: 2 };
    const rows = () => readMetrics<PriorRow>(join(run, 'prior', 'metrics.jsonl')).filter((r) => r.split === 'train').map((r) => [r.step, r.nll_nats, r.lr]);
    const full = await trainPrior({ ...prior, steps: 6 }, quiet);
    t.equal(full.status, 'finished');
    const a = rows();
    t.same(a.map((r) => r[0]), [1, 2, 3, 4, 5, 6], 'one train row per step');
    const half = await trainPrior({ ...prior, steps: 3 }, { ...quiet, overwrite: true });
    t.equal(half.step, 3);
    const resumed = await trainPrior({ ...prior, steps: 6 }, { ...quiet, resume: true });
    t.equal(resumed.step, 6);
    t.same(rows(), a, 'identical per-step NLLs after resuming the 3-step run at its last checkpoint');
    t.ok(resumed.valid && Number.isFinite(resumed.valid.nats), 'validated');
    await t.rejects(trainPrior({ ...prior, steps: 6 }, quiet), /already holds a prior: continue it with --resume, or pass --overwrite/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
