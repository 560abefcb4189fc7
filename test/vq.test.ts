// The vector quantiser (engine/vq.ts): the fused nearest-code kernel in both schedules, the
// segment sums, and quantisation as an autograd op with the straight-through
// estimator, the codebook loss and the commitment loss, against float64 references.
import t, { type Test } from 'tap';
import { assertClose, compare, gpu, gradcheck, assertBitwise } from './helpers.js';
import { checkNearest, refNearest, refVqLoss, sqdist } from './ref/vq.js';
import { NEAREST_D, NEAREST_K, SEGMENT_CASES, TIE_CASES, nearestVariants, subgroupsOf8, vqData } from './cases/vq.js';
import { Rng } from '../engine/random.js';
import { parseFlags, withFlags } from '../engine/flags.js';
import { backward } from '../engine/autograd.js';
import { type Tensor, tensor, tidy } from '../engine/tensor.js';
import '../engine/elementwise.js'; // registers the gradient accumulation add
import {
  type VqSchedule,
  codebookNorms,
  nearestCode,
  nearestRegPlan,
  segmentSum,
  vectorQuantize,
  vqSchedule,
} from '../engine/vq.js';

const r = await gpu(t);
const SCHEDULES: VqSchedule[] = ['reg', 'smem'];
const sg8 = subgroupsOf8(r.caps);
const VARIANTS = nearestVariants(r.caps);

const f32 = async (x: Tensor) => Float32Array.from((await x.read()) as Float32Array);
const u32 = async (x: Tensor) => Uint32Array.from((await x.read()) as Uint32Array);

t.test('schedule: default by device, flag vqSchedule (VQ_VQ_SCHEDULE) overrides, bad values refused', async (t) => {
  t.equal(vqSchedule(), r.caps.isCpu ? 'reg' : 'smem');
  withFlags({ vqSchedule: 'smem' }, () => t.equal(vqSchedule(), 'smem'));
  withFlags({ vqSchedule: 'reg' }, () => {
    t.equal(vqSchedule(), 'reg');
    t.equal(vqSchedule('smem'), 'smem', 'an explicit option beats the flag');
  });
  t.throws(() => parseFlags({ VQ_VQ_SCHEDULE: 'fast' }), /VQ_VQ_SCHEDULE must be one of auto, reg, smem, got 'fast'/);
  t.throws(() => vqSchedule('fast' as 'reg'), /must be 'reg' or 'smem', got 'fast'/);
});

t.test('nearestCode matches float64 for K in {1,7,128,512,4099} x D in {1,3,64}, every kernel', async (t) => {
  const rng = new Rng(11);
  for (const k of NEAREST_K) {
    for (const d of NEAREST_D) {
      // N is a prime (not a multiple of any tile) and big enough for several workgroups; the
      // big codebook gets fewer rows to keep the float64 reference quick.
      const n = k === 4099 ? 131 : d === 1 ? 1031 : 389;
      const zd = rng.uniformArray(n * d, -1, 1);
      const ed = rng.uniformArray(k * d, -1, 1);
      const z = tensor(zd, [n, d]);
      const e = tensor(ed, [k, d]);
      if (sg8 && d === 64) {
        // The tiles these shapes take with subgroups: D = 64 is unrolled; codebooks up to 64 KiB
        // bind as a uniform array (a power of two of vec4s), bigger ones as storage.
        const plan = nearestRegPlan(n, e, true);
        t.equal(plan.un, 16, `K=${k}: the d loop is unrolled`);
        t.equal(plan.uniformCodes, k <= 256 ? Math.max(16, 2 ** Math.ceil(Math.log2(k * 16))) : 0, `K=${k}: codebook binding`);
      }
      for (const { name: schedule, ...opts } of VARIANTS) {
        const { indices, distances } = nearestCode(z, e, { ...opts, distances: true });
        const got = await u32(indices);
        // A row may differ from the float64 argmin only where the two distances are within f32
        // rounding of ||e||^2 - 2 z.e (dense codes, e.g. 4099 of them on a line at D = 1).
        const { failures, differ } = checkNearest(zd, ed, n, k, d, got);
        t.same(failures, [], `K=${k} D=${d} N=${n} ${schedule} (${differ} near-ties resolved otherwise)`);
        const dist = await f32(distances!);
        const expect = Float64Array.from(got, (g, i) => sqdist(zd, ed, d, i, g));
        assertClose(t, dist, expect, { rtol: 1e-4, atol: 2e-5 * d }, `distances K=${k} D=${d} ${schedule}`);
        indices.dispose();
        distances!.dispose();
      }
      z.dispose();
      e.dispose();
    }
  }
});

t.test('nearestCode at the limits the issue names: K = 8192, D = 256', async (t) => {
  const rng = new Rng(13);
  const [n, k, d] = [37, 8192, 256];
  const zd = rng.uniformArray(n * d, -1, 1);
  const ed = rng.uniformArray(k * d, -1, 1);
  const z = tensor(zd, [n, d]);
  const e = tensor(ed, [k, d]);
  for (const { name, ...opts } of VARIANTS) {
    const { indices } = nearestCode(z, e, opts);
    t.same(checkNearest(zd, ed, n, k, d, await u32(indices)).failures, [], name);
    indices.dispose();
  }
  z.dispose();
  e.dispose();
});

t.test('exact ties go to the lowest index (duplicate codebook rows), every kernel', async (t) => {
  const rng = new Rng(5);
  for (const { k, d, pairs } of TIE_CASES) {
    const ed = rng.uniformArray(k * d, -1, 1);
    const dupOf = new Map<number, number>();
    for (const [src, dst] of pairs) {
      ed.copyWithin(dst * d, src * d, src * d + d);
      dupOf.set(dst, src);
    }
    // Rows of z: exact copies of duplicated codes (the later copy named first), then noise.
    const targets = [...dupOf.keys()];
    const n = 97;
    const zd = rng.uniformArray(n * d, -1, 1);
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) {
        const j = targets[(i / 2) % targets.length];
        zd.set(ed.subarray(j * d, j * d + d), i * d);
      }
    }
    const z = tensor(zd, [n, d]);
    const e = tensor(ed, [k, d]);
    const ref = refNearest(zd, ed, n, k, d);
    for (const { name: schedule, ...opts } of VARIANTS) {
      const { indices } = nearestCode(z, e, opts);
      const got = await u32(indices);
      indices.dispose();
      let bad = 0;
      for (let i = 0; i < n; i += 2) {
        const j = targets[(i / 2) % targets.length];
        let lowest = dupOf.get(j)!;
        while (dupOf.has(lowest)) lowest = dupOf.get(lowest)!;
        if (got[i] !== lowest || ref.idx[i] !== lowest) bad++;
      }
      t.equal(bad, 0, `K=${k} D=${d} ${schedule}: every exact copy maps to the lowest duplicate`);
      t.same(checkNearest(zd, ed, n, k, d, got).failures, [], `K=${k} ${schedule}: other rows`);
    }
    z.dispose();
    e.dispose();
  }
});

t.test('nearestCode: empty batch, norms, clear errors', async (t) => {
  const e = tensor([0, 0, 1, 1, 2, 2], [3, 2]);
  const z0 = tensor([], [0, 2]);
  const { indices } = nearestCode(z0, e);
  t.same(indices.shape, [0]);
  indices.dispose();
  const z = tensor([1.9, 2.2, 0.2, -0.1], [2, 2]);
  const norms = codebookNorms(e);
  t.same([...(await norms.read())], [0, 2, 8]);
  for (const { name, ...opts } of VARIANTS) {
    const res = nearestCode(z, e, opts);
    t.same([...(await res.indices.read())], [2, 0], name);
    res.indices.dispose();
  }
  t.throws(() => nearestCode(tensor([1, 2, 3], [1, 3]), e), /nearestCode: z must be \[N, D\] and the codebook \[K, D\] with the same D, got z \[1, 3\] and codebook \[3, 2\]/);
  t.throws(() => nearestCode(tensor([1, 2], [2]), e), /got z \[2\]/);
  t.throws(() => nearestCode(z, tensor([], [0, 2])), /empty codebook \[0, 2\]/);
  if (!sg8) t.throws(() => nearestCode(z, e, { schedule: 'reg', subgroups: true }), /subgroups of 8 lanes are not available/);
  t.throws(() => nearestCode(tensor(new Int32Array([1, 2]), [1, 2]), e), /expected f32/);
  for (const x of [e, z0, z, norms]) x.dispose();
});

t.test('segmentSum matches float64, repeats exactly, and handles a collapsed codebook', async (t) => {
  const rng = new Rng(3);
  for (const [n, k, collapsed] of SEGMENT_CASES) {
    // skewed codes, several of them unused
    const idx = Uint32Array.from({ length: n }, () => (collapsed ? 300 : Math.min(k - 1, Math.floor(rng.next() ** 2 * k))));
    const it = tensor(idx, [n], 'u32');
    for (const d of [3, 4]) {
      const xd = rng.uniformArray(n * d, -1, 1);
      const x = tensor(xd, [n, d]);
      const s1 = segmentSum(x, it, k);
      const s2 = segmentSum(x, it, k);
      const expect = new Float64Array(k * d);
      for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) expect[idx[i] * d + c] += xd[i * d + c];
      const got1 = await f32(s1);
      assertClose(t, got1, expect, { rtol: 1e-5, atol: 1e-5 }, `segmentSum N=${n} K=${k} D=${d}`);
      assertBitwise(t, got1, await f32(s2), 'bit-identical on a second run');
      for (const q of [x, s1, s2]) q.dispose();
    }
    it.dispose();
  }
  const x = tensor([1, 2], [2, 1]);
  t.throws(() => segmentSum(x, tensor([1, 2], [2]), 3), /expected u32/);
  t.throws(() => segmentSum(x, tensor([1, 2], [2], 'u32'), 0), /positive integer, got 0/);
  t.throws(() => segmentSum(x, tensor([1, 2, 0], [3], 'u32'), 3), /x must be \[N, D\] with N = 3/);
  x.dispose();
});

// ---- Quantisation, losses and gradients.

interface Grads {
  dz: ArrayLike<number> | null;
  dE: ArrayLike<number> | null;
}

/** Compares gradients with the SPEC formulas; returns failure strings. */
function gradFailures(got: Grads, want: Grads, tol = { rtol: 1e-4, atol: 1e-7 }): string[] {
  const out: string[] = [];
  for (const key of ['dz', 'dE'] as const) {
    const g = got[key];
    const w = want[key];
    if ((g === null) !== (w === null)) {
      out.push(`${key}: ${g === null ? 'no gradient' : 'a gradient'}, expected ${w === null ? 'none' : 'one'}`);
    } else if (g && w) {
      const c = compare(g, w, tol);
      if (!c.ok) out.push(`${key}: ${c.worst}`);
    }
  }
  return out;
}

t.test('vectorQuantize forward: z_q = E[idx] exactly, losses match float64', async (t) => {
  const rng = new Rng(21);
  const [n, k, d, beta] = [301, 19, 6, 1.25];
  const { ed, zd } = vqData(rng, n, k, d);
  const z = tensor(zd, [n, d]);
  const e = tensor(ed, [k, d]);
  for (const schedule of SCHEDULES) {
    const q = vectorQuantize(z, e, { beta, schedule });
    const idx = await u32(q.indices);
    t.same(idx, refNearest(zd, ed, n, k, d).idx, `${schedule}: indices`);
    const ref = refVqLoss(zd, ed, idx, n, k, d, beta);
    t.same(await f32(q.zq), Float32Array.from(ref.zq), `${schedule}: z_q rows are codebook rows`);
    t.same(q.zq.shape, [n, d]);
    t.same(q.loss.shape, []);
    assertClose(t, [await q.codebookLoss.item()], [ref.codebookLoss], { rtol: 1e-5 }, 'codebook loss');
    assertClose(t, [await q.commitmentLoss.item()], [ref.commitmentLoss], { rtol: 1e-5 }, 'commitment loss');
    assertClose(t, [await q.loss.item()], [ref.codebookLoss + ref.commitmentLoss], { rtol: 1e-5 }, 'total');
    for (const x of Object.values(q)) x.dispose();
  }
  const ema = vectorQuantize(z, e, { beta: 0.25, codebookLoss: false });
  const m = refVqLoss(zd, ed, await u32(ema.indices), n, k, d, 0.25).m;
  assertClose(t, [await ema.loss.item()], [0.25 * m], { rtol: 1e-5 }, 'codebookLoss: false leaves the commitment term only');
  for (const x of Object.values(ema)) x.dispose();
  // precomputed indices are used as given
  const fixed = tensor(new Uint32Array(n).fill(2), [n], 'u32');
  const q2 = vectorQuantize(z, e, { indices: fixed });
  t.same([...(await u32(q2.indices))].slice(0, 3), [2, 2, 2]);
  assertClose(t, [await q2.codebookLoss.item()], [refVqLoss(zd, ed, new Uint32Array(n).fill(2), n, k, d, 1).m], { rtol: 1e-5 }, 'given indices');
  for (const x of Object.values(q2)) x.dispose();
  t.throws(() => vectorQuantize(z, e, { indices: tensor([1], [1], 'u32') }), /indices .* do not match z \[301, 6\]/);
  t.throws(() => vectorQuantize(tensor([], [0, d]), e), /means over 0 elements/);
  t.throws(() => vectorQuantize(z, e, { beta: NaN }), /beta must be a finite number/);
  for (const x of [z, e, fixed]) x.dispose();
});

t.test('gradients reach exactly what SPEC section 2 says; beta on the wrong term fails', async (t) => {
  // D = 5 runs the scalar kernels, D = 8 the vec4 ones
  for (const d of [5, 8]) await t.test(`D=${d}`, (t) => gradTerms(t, d));
});

async function gradTerms(t: Test, d: number) {
  const rng = new Rng(8);
  const [n, k, beta] = [257, 13, 1.25];
  const { ed, zd } = vqData(rng, n, k, d);
  const R = rng.uniformArray(n * d, -1, 1); // stands for the decoder's gradient at z_q

  // Runs `pick` on a fresh graph and returns the leaves' gradients.
  const grads = async (pick: (q: ReturnType<typeof vectorQuantize>) => [Tensor, Tensor | null], opts = {}): Promise<Grads & { idx: Uint32Array }> => {
    const z = tensor(zd, [n, d]).requireGrad();
    const e = tensor(ed, [k, d]).requireGrad();
    const q = vectorQuantize(z, e, { beta, ...opts });
    const [root, seed] = pick(q);
    backward(root, seed ? { grad: seed } : {});
    const out = {
      dz: z.grad ? await f32(z.grad) : null,
      dE: e.grad ? await f32(e.grad) : null,
      idx: await u32(q.indices),
    };
    for (const x of [z, e, z.grad, e.grad, seed, ...Object.values(q)]) x?.dispose();
    return out;
  };
  const Rt = () => tensor(R, [n, d]);

  // Each term alone.
  const st = await grads((q) => [q.zq, Rt()]);
  t.same(gradFailures(st, { dz: R, dE: null }, { rtol: 0, atol: 0 }), [], 'straight-through: dL/dz_q copied to z exactly, nothing to E');
  const ref = refVqLoss(zd, ed, st.idx, n, k, d, beta);
  const cb = await grads((q) => [q.codebookLoss, null]);
  t.same(gradFailures(cb, { dz: null, dE: ref.dCodebook }), [], 'codebook loss: only E, 2/(ND) sum (E_k - z_i)');
  const cm = await grads((q) => [q.commitmentLoss, null]);
  t.same(gradFailures(cm, { dz: ref.dzCommit, dE: null }), [], 'commitment loss: only z, 2 beta/(ND) (z - E_k)');

  // The training objective: decoder gradient through z_q plus the quantiser loss.
  const full = await grads((q) => [q.loss, null]);
  t.same(gradFailures(full, { dz: ref.dzCommit, dE: ref.dCodebook }), [], 'loss: both terms, each to its own parameter');
  const both = async () => {
    const z = tensor(zd, [n, d]).requireGrad();
    const e = tensor(ed, [k, d]).requireGrad();
    const q = vectorQuantize(z, e, { beta });
    // one backward over the VQ-VAE graph: z gets the straight-through copy and the commitment
    // gradient (accumulated by autograd), E only the codebook gradient
    const seed = Rt();
    backward(q.zq, { grad: seed, retainGraph: true });
    backward(q.loss);
    const out = { dz: await f32(z.grad!), dE: await f32(e.grad!) };
    for (const x of [z, e, z.grad, e.grad, seed, ...Object.values(q)]) x?.dispose();
    return out;
  };
  const vqvae = await both();
  const wantDz = Float64Array.from(R, (v, i) => v + ref.dzCommit[i]);
  t.same(gradFailures(vqvae, { dz: wantDz, dE: ref.dCodebook }), [], 'reconstruction + VQ loss');

  // The common bug (beta on the codebook term, none on the commitment term) gives other
  // numbers, and the same check rejects it.
  const buggy = { dz: Float64Array.from(R, (v, i) => v + ref.dzCommit[i] / beta), dE: ref.dCodebook.map((v) => v * beta) };
  t.not(gradFailures(buggy, { dz: wantDz, dE: ref.dCodebook }).length, 0, 'a beta-swapped gradient fails the check');
  const buggyFull = { dz: ref.dzCommit.map((v) => v / beta), dE: ref.dCodebook.map((v) => v * beta) };
  t.equal(gradFailures(buggyFull, { dz: ref.dzCommit, dE: ref.dCodebook }).length, 2, 'both parameters flag the swap');

  // A scaled output gradient scales both; codebookLoss: false gives E nothing.
  const half = await grads((q) => [q.loss, tensor([0.5], [])]);
  t.same(gradFailures(half, { dz: ref.dzCommit.map((v) => v / 2), dE: ref.dCodebook.map((v) => v / 2) }), [], 'g = 0.5');
  const emaStyle = await grads((q) => [q.loss, null], { codebookLoss: false });
  t.same(gradFailures(emaStyle, { dz: ref.dzCommit, dE: null }), [], 'codebookLoss: false: commitment only');

  // Deterministic: the codebook gradient repeats bit for bit.
  const again = await grads((q) => [q.codebookLoss, null]);
  t.same(again.dE, cb.dE, 'codebook gradient is bit-identical across runs');
}

t.test('gradcheck: codebook loss in E (z held), commitment loss in z (E held)', async (t) => {
  const rng = new Rng(4);
  const [n, k, d, beta] = [23, 4, 3, 0.75];
  const { ed, zd } = vqData(rng, n, k, d);
  // Small steps keep every row on its code (the argmin is piecewise constant).
  const opts = { eps: 1e-3, rtol: 2e-2, atol: 1e-4 };
  const cbFail = await gradcheck(
    ([e]) => {
      const z = tensor(zd, [n, d]);
      return vectorQuantize(z, e, { beta }).codebookLoss;
    },
    [{ data: ed, shape: [k, d] }],
    opts,
  );
  t.same(cbFail, [], 'codebook loss');
  const cmFail = await gradcheck(
    ([z]) => {
      const e = tensor(ed, [k, d]);
      return vectorQuantize(z, e, { beta }).commitmentLoss;
    },
    [{ data: zd, shape: [n, d] }],
    opts,
  );
  t.same(cmFail, [], 'commitment loss');
  const lossFail = await gradcheck(
    ([z, e]) => {
      // the total with the stop-gradients applied by hand: codebook term in E, commitment in z
      const q = vectorQuantize(z, e, { beta });
      return q.loss;
    },
    [
      { data: zd, shape: [n, d] },
      { data: ed, shape: [k, d] },
    ],
    { ...opts, directions: 2, elementwiseUpTo: 0 },
  );
  // Finite differences see the whole derivative of mean((E - z)^2) (1 + beta) in both inputs,
  // the stop-gradients do not: the checker must complain about both inputs.
  t.ok(lossFail.some((f) => f.startsWith('input 0')) && lossFail.some((f) => f.startsWith('input 1')), 'stop-gradients differ from the plain derivative');
});

t.test('z_q and the loss over many workgroups (2.1M elements)', async (t) => {
  const rng = new Rng(1);
  const [n, k, d] = [32771, 17, 64];
  const ed = rng.uniformArray(k * d, -1, 1);
  const idx = Uint32Array.from({ length: n }, () => rng.int(k));
  const z = tensor(new Float32Array(n * d), [n, d]);
  const e = tensor(ed, [k, d]);
  const it = tensor(idx, [n], 'u32');
  const q = vectorQuantize(z, e, { indices: it, beta: 1 });
  const zq = await f32(q.zq);
  let bad = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c += 7) if (zq[i * d + c] !== ed[idx[i] * d + c]) bad++;
  t.equal(bad, 0);
  let m = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) m += ed[idx[i] * d + c] ** 2;
  assertClose(t, [await q.loss.item()], [(2 * m) / (n * d)], { rtol: 1e-5 }, 'loss over 513 partial sums');
  for (const x of [z, e, it, ...Object.values(q)]) x.dispose();
});

t.test('no leaks: a quantiser step inside tidy frees everything', async (t) => {
  const rng = new Rng(2);
  const { ed, zd } = vqData(rng, 50, 6, 4);
  const z = tensor(zd, [50, 4]).requireGrad();
  const e = tensor(ed, [6, 4]).requireGrad();
  await r.sync();
  const before = r.pool.stats().liveBuffers;
  tidy(() => {
    const q = vectorQuantize(z, e);
    backward(q.loss);
  });
  z.grad?.dispose();
  e.grad?.dispose();
  z.grad = null;
  e.grad = null;
  await r.sync();
  t.equal(r.pool.stats().liveBuffers, before);
  z.dispose();
  e.dispose();
});
