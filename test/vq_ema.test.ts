// Quantiser statistics (counts, perplexity, usage windows), the EMA codebook with dead-code
// restarts, and k-means++ initialisation (engine/vq.ts, engine/vq_ema.ts) against float64.
import t from 'tap';
import { assertClose, gpu } from './helpers.js';
import { RefEma, refKmeansPP, refLloyd, refNearest, refStats } from './ref/vq.js';
import { Rng } from '../engine/random.js';
import { type Tensor, tensor } from '../engine/tensor.js';
import { CodeUsage, codeCounts, codebookStats, nearestCode } from '../engine/vq.js';
import { EmaCodebook, kmeansInit, sampleRows } from '../engine/vq_ema.js';

await gpu(t);

const f32 = async (x: Tensor) => Float32Array.from((await x.read()) as Float32Array);
const u32 = async (x: Tensor) => Uint32Array.from((await x.read()) as Uint32Array);

t.test('codeCounts, perplexity and codes used match the CPU', async (t) => {
  const rng = new Rng(7);
  const cases: [string, number, Uint32Array][] = [
    ['skewed', 512, Uint32Array.from({ length: 65536 }, () => Math.floor(rng.next() ** 3 * 512))],
    ['one code', 128, new Uint32Array(1000).fill(77)],
    ['uniform', 256, Uint32Array.from({ length: 256 * 9 }, (_, i) => i % 256)],
    ['K=4099, few rows', 4099, Uint32Array.from({ length: 37 }, () => rng.int(4099))],
    ['no rows', 5, new Uint32Array(0)],
  ];
  for (const [name, k, idx] of cases) {
    const it = tensor(idx, [idx.length], 'u32');
    const counts = codeCounts(it, k);
    const want = new Uint32Array(k);
    for (const i of idx) want[i]++;
    t.same(await u32(counts), want, `${name}: counts`);
    const s = codebookStats(counts);
    const ref = refStats(want);
    assertClose(t, [await s.perplexity.item()], [ref.perplexity], { rtol: 2e-5 }, `${name}: perplexity`);
    t.equal(await s.used.item(), ref.used, `${name}: used`);
    for (const x of [it, counts, s.perplexity, s.used]) x.dispose();
  }
  t.throws(() => codeCounts(tensor([1], [1]), 3), /expected u32/);
  t.throws(() => codebookStats(tensor([1], [1])), /expected u32/);
});

t.test('codeCounts over more than 65535 workgroups (16.8M indices)', async (t) => {
  const n = 65536 * 256 + 77;
  const k = 7;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = (i * 2654435761) % k;
  const want = new Uint32Array(k);
  for (let i = 0; i < n; i++) want[idx[i]]++;
  const it = tensor(idx, [n], 'u32');
  const counts = codeCounts(it, k);
  t.same(await u32(counts), want);
  it.dispose();
  counts.dispose();
});

t.test('CodeUsage: distinct codes over a window of batches and since reset', async (t) => {
  const k = 10;
  const batches = [[0, 1, 1], [2], [3, 4], [], [1, 9, 9]];
  const usage = new CodeUsage(k, 2);
  const seen: Set<number>[] = [];
  for (const b of batches) {
    const it = tensor(Uint32Array.from(b), [b.length], 'u32');
    const counts = codeCounts(it, k);
    usage.update(counts);
    seen.push(new Set(b));
    const window = (w: number) => new Set(seen.slice(-w).flatMap((s) => [...s])).size;
    const u2 = usage.used();
    const u1 = usage.used(1);
    const all = usage.used(Infinity);
    t.equal(await u2.item(), window(2), `after batch ${seen.length}: last 2 batches`);
    t.equal(await u1.item(), window(1), `after batch ${seen.length}: last batch`);
    t.equal(await all.item(), window(seen.length), `after batch ${seen.length}: all batches`);
    for (const x of [it, counts, u2, u1, all]) x.dispose();
  }
  usage.reset();
  const none = usage.used(Infinity);
  t.equal(await none.item(), 0, 'reset forgets everything');
  none.dispose();
  t.throws(() => usage.update(tensor([1, 2], [2], 'u32')), /counts has 2 codes, expected 10/);
  t.throws(() => new CodeUsage(4, 0), /window must be at least 1/);
  usage.dispose();
});

t.test('sampleRows draws without repeats until the rows run out', async (t) => {
  const rows = sampleRows(new Rng(1), 50, 50);
  t.equal(new Set(rows).size, 50);
  const more = sampleRows(new Rng(1), 5, 12);
  t.equal(new Set(more.subarray(0, 5)).size, 5);
  t.equal(new Set(more.subarray(5, 10)).size, 5);
  t.ok(more.every((v) => v < 5));
});

/** A few clustered batches for the EMA tests. */
function batches(rng: Rng, steps: number, n: number, d: number, centres: Float32Array, nc: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let s = 0; s < steps; s++) {
    const z = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const c = rng.int(nc);
      for (let q = 0; q < d; q++) z[i * d + q] = centres[c * d + q] + 0.3 * rng.normal();
    }
    out.push(z);
  }
  return out;
}

t.test('EMA codebook follows the float64 reference over several steps', async (t) => {
  const [k, n, steps] = [24, 333, 6];
  // D = 5 runs the scalar kernels, D = 8 the vec4 ones
  for (const variant of [
    { name: 'debiased', debias: true, threshold: 0, d: 5 },
    { name: 'debiased, D=8', debias: true, threshold: 0, d: 8 },
    { name: 'N=1, m=e start', debias: false, threshold: 0, d: 5 },
    { name: 'debiased with restarts', debias: true, threshold: 0.5, d: 5 },
    { name: 'debiased with restarts, D=8', debias: true, threshold: 0.5, d: 8 },
  ]) {
    const d = variant.d;
    const rng = new Rng(42);
    const centres = rng.normalArray(6 * d, 0, 2);
    // the initial codebook: a few codes near the data, most far away (they go dead)
    const e0 = rng.normalArray(k * d, 0, 1);
    for (let j = 4; j < k; j++) for (let q = 0; q < d; q++) e0[j * d + q] += 20;
    const data = batches(rng, steps, n, d, centres, 6);
    const codebook = tensor(e0, [k, d]);
    const opts = { decay: 0.9, eps: 1e-5, debias: variant.debias, threshold: variant.threshold };
    const ema = new EmaCodebook(codebook, { ...opts, restartThreshold: variant.threshold, rng: new Rng(9) });
    const ref = new RefEma(e0, k, d, opts);
    const rowsRng = new Rng(9); // the same draws as the EmaCodebook's generator
    let restarts = 0;
    for (let s = 0; s < steps; s++) {
      const z = tensor(data[s], [n, d]);
      const { indices } = nearestCode(z, codebook);
      const idx = await u32(indices);
      t.same(idx, refNearest(data[s], ref.e, n, k, d).idx, `${variant.name} step ${s + 1}: quantised with the codebook before the update`);
      const ndead = ema.update(z, indices);
      const rows = variant.threshold > 0 ? sampleRows(rowsRng, n, k) : new Uint32Array(k);
      ref.update(data[s], idx, rows);
      t.equal(await ndead.item(), ref.restarted, `${variant.name} step ${s + 1}: restarted codes`);
      restarts += ref.restarted;
      assertClose(t, await f32(codebook), ref.e, { rtol: 1e-4, atol: 1e-5 }, `${variant.name} step ${s + 1}: codebook`);
      assertClose(t, await f32(ema.emaCount), ref.N, { rtol: 1e-5, atol: 1e-6 }, `${variant.name} step ${s + 1}: counts`);
      for (const x of [z, indices, ndead]) x.dispose();
    }
    if (variant.threshold > 0) t.ok(restarts > 0, `${variant.name}: some codes were restarted (${restarts})`);
    ema.dispose();
    codebook.dispose();
  }
});

t.test('EMA: repeatable updates, errors', async (t) => {
  const rng = new Rng(3);
  const [k, d, n] = [6, 3, 40];
  const e0 = rng.normalArray(k * d);
  const zd = rng.normalArray(n * d);
  const a = tensor(e0, [k, d]);
  const b = tensor(e0, [k, d]);
  const z = tensor(zd, [n, d]);
  const { indices } = nearestCode(z, a);
  const emaA = new EmaCodebook(a);
  const emaB = new EmaCodebook(b);
  emaA.update(z, indices).dispose();
  emaB.update(z, indices).dispose();
  t.same(await f32(a), await f32(b), 'the same update twice gives bit-identical codebooks');
  t.throws(() => emaA.update(tensor([1, 2], [1, 2]), indices), /expected z \[N, 3\] and indices \[N\], got z \[1, 2\] and indices \[40\]/);
  const p = tensor(e0, [k, d]).requireGrad();
  t.throws(() => new EmaCodebook(p), /requires grad, but an EMA codebook takes no gradient/);
  t.throws(() => new EmaCodebook(tensor(e0, [k, d]), { decay: 1 }), /decay must be in \(0, 1\)/);
  for (const x of [a, b, z, indices, p]) x.dispose();
  emaA.dispose();
  emaB.dispose();
});

t.test('k-means++ seeding and Lloyd steps match float64', async (t) => {
  const rng = new Rng(12);
  const [n, d, k] = [300, 4, 16];
  const centres = rng.normalArray(8 * d, 0, 3);
  const zd = batches(rng, 1, n, d, centres, 8)[0];
  const z = tensor(zd, [n, d]);
  const draws = new Rng(5);
  const u = Float64Array.from({ length: k }, () => Math.fround(draws.next()));
  const rows = refKmeansPP(zd, n, d, k, u);
  const seeded = kmeansInit(z, k, { rng: new Rng(5) });
  const want = new Float32Array(k * d);
  for (let c = 0; c < k; c++) want.set(zd.subarray(rows[c] * d, rows[c] * d + d), c * d);
  t.same(await f32(seeded), want, 'k-means++ picks the same rows');
  t.equal(new Set(rows).size, k, 'distinct rows');

  const e = Float64Array.from(want);
  for (let it = 0; it < 3; it++) refLloyd(zd, e, n, k, d);
  const into = tensor(new Float32Array(k * d), [k, d]);
  const out = kmeansInit(z, k, { rng: new Rng(5), iters: 3, into });
  t.equal(out, into, 'writes into the given tensor');
  assertClose(t, await f32(into), e, { rtol: 1e-5, atol: 1e-5 }, '3 Lloyd steps');

  // More codes than distinct rows: once every row is a centre, draws fall back to floor(u n).
  const small = tensor(zd.subarray(0, 5 * d), [5, d]);
  const u8 = Float64Array.from({ length: 8 }, () => 0);
  const d8 = new Rng(6);
  for (let c = 0; c < 8; c++) u8[c] = Math.fround(d8.next());
  const rows8 = refKmeansPP(zd.subarray(0, 5 * d), 5, d, 8, u8);
  const e8 = kmeansInit(small, 8, { rng: new Rng(6) });
  const want8 = new Float32Array(8 * d);
  for (let c = 0; c < 8; c++) want8.set(zd.subarray(rows8[c] * d, rows8[c] * d + d), c * d);
  t.same(await f32(e8), want8, 'K > N');
  t.equal(new Set(rows8.subarray(0, 5)).size, 5, 'the first 5 centres are the 5 rows');

  t.throws(() => kmeansInit(z, 0), /positive integer, got 0/);
  t.throws(() => kmeansInit(z, k, { into: tensor([1], [1]) }), /into must be \[16, 4\]/);
  for (const x of [z, seeded, into, small, e8]) x.dispose();
});
