// The autotuner (engine/autotune.ts, engine/candidates.ts): every candidate plan of a conv pass,
// weight gradient, matmul and nearest-code search computes its op to float rounding (against
// float64, on awkward shapes); choices round-trip through the per-adapter file and a second
// process times nothing; a corrupt, foreign or stale file gives a one-line warning and the
// shapes are tuned again; keys are stable and tell shapes, flags and adapters apart.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compare, gpu } from './helpers.js';
import { refConv2d, refConv2dGrads } from './ref/conv.js';
import { refMatmul } from './ref/matmul.js';
import { checkNearest } from './ref/vq.js';
import { H100_CAPS, LAVAPIPE_CAPS } from './plans/caps.js';
import {
  adapterId, autotuneMode, autotunePending, autotuneCounters, fileTuneStore, tune, pendingTunings, resetAutotune, setTuneStore, tuneKey, withFlags,
  matmul, nearestCode, Rng, tensor, matmulCandidates, nearestCandidates, runGemm, type Flags, FLAG_SPECS, conv2d,
} from '../engine/node.js';
import { convPassCandidates, wgradCandidates } from '../engine/conv/candidates.js';
import { describeConvPassPlan, describeWgradPlan } from '../engine/conv/plan.js';
import { conv2dGeometry, forwardConvPass, transposedPasses, wgradPass } from '../engine/conv/geometry.js';
import { runConvPass, runWgrad } from '../engine/conv/launch.js';

const r = await gpu(t);
const caps = r.caps;
const DEFAULTS = Object.fromEntries(Object.entries(FLAG_SPECS).map(([k, v]) => [k, v.default])) as Flags;
const rand = (n: number, seed: number) => new Rng(seed).uniformArray(n, -1, 1);
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** f32 sums against float64: an absolute tolerance scaled to the largest reference value. */
function close(t: Test, got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  const c = compare(got, want, { rtol: 1e-4, atol: 2e-5 * Math.max(maxAbs(want), 1e-3) });
  t.ok(c.ok, `${what}: ${c.worst}`);
}

// ---------------------------------------------------------------------------------------------
// Every candidate computes the op

// Awkward: odd sizes, a stride-2 4x4 kernel (four input-gradient phases), 7 output rows; a 1x1
// conv with KIN % 4 != 0 and 10 rows.
const CONVS = [
  { name: '4x4 s2', B: 2, CI: 5, IH: 11, IW: 9, CO: 7, K: 4, stride: 2, pad: 1 },
  { name: '1x1', B: 2, CI: 6, IH: 7, IW: 5, CO: 10, K: 1, stride: 1, pad: 0 },
];

for (const c of CONVS) {
  t.test(`conv ${c.name}: every candidate of every pass against float64`, async (t) => {
    const g = conv2dGeometry([c.B, c.CI, c.IH, c.IW], [c.CO, c.CI, c.K, c.K], { stride: c.stride, padding: c.pad });
    const ref = { B: c.B, CI: c.CI, IH: c.IH, IW: c.IW, CO: c.CO, KH: c.K, KW: c.K, sy: c.stride, sx: c.stride, py: c.pad, px: c.pad };
    const xs = rand(c.B * c.CI * c.IH * c.IW, 1);
    const ws = rand(c.CO * c.CI * c.K * c.K, 2);
    const dys = rand(c.B * c.CO * g.OH * g.OW, 3);
    const want = refConv2d(xs, ws, null, ref);
    const grads = refConv2dGrads(xs, ws, dys, ref);
    const [x, w, dy] = [tensor(xs, [c.B, c.CI, c.IH, c.IW]), tensor(ws, [c.CO, c.CI, c.K, c.K]), tensor(dys, [c.B, c.CO, g.OH, g.OW])];

    const fwd = convPassCandidates(forwardConvPass(g), caps, DEFAULTS, w.buffer.size);
    t.ok(fwd.length >= 2, `forward: ${fwd.length} candidates`);
    for (const plan of fwd) {
      const y = tensor(new Float32Array(want.length), [c.B, c.CO, g.OH, g.OW]);
      runConvPass(x, w, null, y, plan, false);
      close(t, (await y.read()) as Float32Array, want, `forward ${describeConvPassPlan(plan)}`);
      y.dispose();
    }
    // Input gradient: configuration i runs candidate i of each phase (the last where a phase has fewer).
    const phases = transposedPasses(g).map((p) => convPassCandidates(p, caps, DEFAULTS, w.buffer.size));
    const configs = Math.max(...phases.map((p) => p.length));
    for (let i = 0; i < configs; i++) {
      const dx = tensor(new Float32Array(grads.dx.length), [c.B, c.CI, c.IH, c.IW]);
      const plans = phases.map((p) => p[Math.min(i, p.length - 1)]);
      for (const plan of plans) runConvPass(dy, w, null, dx, plan, false);
      close(t, (await dx.read()) as Float32Array, grads.dx, `input gradient ${[...new Set(plans.map(describeConvPassPlan))].join(' + ')}`);
      dx.dispose();
    }
    const wg = wgradCandidates(wgradPass(g), caps, DEFAULTS);
    t.ok(wg.length >= 2, `weight gradient: ${wg.length} candidates`);
    for (const plan of wg) {
      const dw = runWgrad(dy, x, plan);
      close(t, (await dw.read()) as Float32Array, grads.dw, `weight gradient ${describeWgradPlan(plan)}`);
      dw.dispose();
    }
    [x, w, dy].forEach((v) => v.dispose());
  });
}

t.test('matmul and nearest-code search: every candidate against float64', async (t) => {
  const [M, N, K] = [37, 20, 13];
  const as = rand(M * K, 4);
  const bs = rand(N * K, 5);
  const want = refMatmul(as, [M, K], bs, [N, K], { transB: true }).data;
  const [a, b] = [tensor(as, [M, K]), tensor(bs, [N, K])];
  const shape = { M, N, K, zOut: 1, nRed: 1, aCount: 1, bCount: 1, transA: false, transB: true };
  const mm = matmulCandidates(shape, caps, DEFAULTS);
  t.ok(mm.length >= 2, `matmul: ${mm.length} candidates`);
  for (const plan of mm) {
    const out = tensor(new Float32Array(M * N), [M, N]);
    runGemm({ a, b, out, M, N, K, transB: true }, plan);
    close(t, (await out.read()) as Float32Array, want, `matmul ${plan.tile.schedule} ${plan.tile.tm}x${plan.tile.tn}`);
    out.dispose();
  }
  const [n, k, d] = [150, 37, 12];
  const zs = rand(n * d, 6);
  const es = rand(k * d, 7);
  const [z, e] = [tensor(zs, [n, d]), tensor(es, [k, d])];
  const near = nearestCandidates({ n, k, d, codebookBytes: e.buffer.size }, caps, DEFAULTS);
  t.ok(near.length >= 2, `nearest: ${near.length} candidates`);
  for (const plan of near) {
    const { indices } = nearestCode(z, e, { plan });
    const { failures } = checkNearest(zs, es, n, k, d, (await indices.read()) as Uint32Array);
    t.same(failures, [], `nearest ${plan.kind}`);
    indices.dispose();
  }
  [a, b, z, e].forEach((v) => v.dispose());
});

// ---------------------------------------------------------------------------------------------
// The tuner at the call sites, its file and its counters

/** A temporary cache directory for one test; the tuner's memory is reset before and after. */
function cacheDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vq-autotune-'));
  resetAutotune();
  t.teardown(() => {
    resetAutotune();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Records console.warn lines while `fn` runs. */
async function warnings(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const saved = console.warn;
  console.warn = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await fn();
  } finally {
    console.warn = saved;
  }
  return lines;
}

const A = tensor(rand(33 * 9, 8), [33, 9]);
const B = tensor(rand(9 * 12, 9), [9, 12]);
const product = async () => {
  const y = matmul(A, B);
  const v = (await y.read()) as Float32Array;
  y.dispose();
  return v;
};
t.teardown(() => [A, B].forEach((v) => v.dispose()));

t.test('first use queues the shape; autotunePending times it, saves it, and the choice runs', async (t) => {
  const dir = cacheDir(t);
  await withFlags({ autotune: 'on', autotuneCache: dir }, async () => {
    const rule = await product();
    t.equal(pendingTunings().length, 1, 'the product is queued');
    t.match(pendingTunings()[0], /^matmul M33 N12 K9 zOut1 nRed1 aCount1 bCount1 transA0 transB0 f32 caps=\w{8} flags=\w{8} adapter=\w{8}$/);
    const results = await autotunePending();
    t.equal(results.length, 1);
    const c = autotuneCounters();
    t.ok(c.timings >= 2 * 4, `every candidate timed: a warm-up and repetitions (${c.timings} timings)`);
    t.equal(results[0].times.length, matmulCandidates({ M: 33, N: 12, K: 9, zOut: 1, nRed: 1, aCount: 1, bCount: 1, transA: false, transB: false }, caps, DEFAULTS).length);
    t.ok(results[0].times.every((x) => Number.isFinite(x.ms) && x.ms >= 0), 'every candidate ran');
    const tuned = await product();
    const same = compare(tuned, rule, { rtol: 1e-5, atol: 1e-5 });
    t.ok(same.ok, `the tuned plan computes what the rule-based one did: ${same.worst}`);
    t.same(pendingTunings(), [], 'nothing queued again');
    const files = readdirSync(dir);
    t.same(files, [`autotune-${adapterId(caps)}.json`], 'one file, named by the adapter');
    const doc = JSON.parse(readFileSync(join(dir, files[0]), 'utf8'));
    t.equal(doc.adapter, adapterId(caps));
    t.equal(Object.keys(doc.entries).length, 1);
    t.equal(doc.entries[results[0].key].id, results[0].chosenId);
  });
});

t.test('a second process uses the file and times nothing', async (t) => {
  const dir = cacheDir(t);
  await withFlags({ autotune: 'on', autotuneCache: dir }, async () => {
    await product();
    await autotunePending();
    resetAutotune(); // as a new process: nothing in memory
    await product();
    t.same(pendingTunings(), [], 'the stored choice is used');
    t.same(await autotunePending(), []);
    t.same(autotuneCounters(), { timings: 0, tuned: 0, hits: 1 }, 'no timing');
  });
  resetAutotune();
  await withFlags({ autotune: 'cached', autotuneCache: dir }, async () => {
    await product();
    t.same(autotuneCounters(), { timings: 0, tuned: 0, hits: 1 }, "'cached' uses it too");
  });
  resetAutotune();
  await withFlags({ autotune: 'cached', autotuneCache: join(dir, 'empty') }, async () => {
    await product();
    t.same(pendingTunings(), [], "'cached' with no file: rule-based plans, nothing queued");
  });
});

t.test('a corrupt, foreign or stale file: one warning, ignored, tuned again', async (t) => {
  const dir = cacheDir(t);
  const file = join(dir, `autotune-${adapterId(caps)}.json`);
  const cases: [string, string, RegExp][] = [
    ['corrupt', '{"format": 1, "entr', /is not valid JSON/],
    ['not ours', '[1, 2, 3]', /is not a tuning cache of format 1/],
    ['foreign', JSON.stringify({ format: 1, engine: 'x', adapter: 'someoneelse', entries: {} }), /belongs to adapter someoneelse/],
    ['stale', JSON.stringify({ format: 1, engine: 'old', adapter: adapterId(caps), entries: {} }), /was tuned for other kernel sources/],
  ];
  for (const [what, text, message] of cases) {
    writeFileSync(file, text);
    resetAutotune();
    const lines = await warnings(() =>
      withFlags({ autotune: 'on', autotuneCache: dir }, async () => {
        await product();
        t.equal(pendingTunings().length, 1, `${what}: the shape is queued`);
        await autotunePending();
      }),
    );
    t.equal(lines.length, 1, `${what}: one warning`);
    t.match(lines[0], message, `${what}: ${lines[0]}`);
    t.notMatch(lines[0], /\n/, 'on one line');
    t.equal(JSON.parse(readFileSync(file, 'utf8')).adapter, adapterId(caps), `${what}: replaced by a valid file`);
  }
});

t.test('off: rule-based plans, nothing queued or read', async (t) => {
  const dir = cacheDir(t);
  await withFlags({ autotune: 'off', autotuneCache: dir }, async () => {
    await product();
    t.same(pendingTunings(), []);
    t.same(readdirSync(dir), []);
  });
});

t.test('conv2d tuned on first use computes what the rule-based plans did', async (t) => {
  const dir = cacheDir(t);
  const x = tensor(rand(2 * 5 * 11 * 9, 10), [2, 5, 11, 9]);
  const w = tensor(rand(7 * 5 * 4 * 4, 11), [7, 5, 4, 4]);
  const run = async () => {
    const y = conv2d(x, w, null, { stride: 2, padding: 1 });
    const v = (await y.read()) as Float32Array;
    y.dispose();
    return v;
  };
  await withFlags({ autotune: 'on', autotuneCache: dir }, async () => {
    const rule = await run();
    t.equal(pendingTunings().length, 1, 'the forward pass is queued');
    t.match(pendingTunings()[0], /^conv\.pass B2 KIN5 IH11 IW9 ROWS7 /);
    const [res] = await autotunePending();
    t.ok(res.times.length >= 2, `${res.times.length} candidates timed: ${res.times.map((x) => `${x.id} ${x.ms.toFixed(3)}`).join('; ')}`);
    const tuned = await run();
    const c = compare(tuned, rule, { rtol: 1e-5, atol: 1e-5 });
    t.ok(c.ok, `tuned (${res.chosenId}) vs rule-based (${res.defaultId}): ${c.worst}`);
  });
  [x, w].forEach((v) => v.dispose());
});

t.test('keys: stable, and they tell shapes, flags and adapters apart', async (t) => {
  const key = (shape: string, c = LAVAPIPE_CAPS, f: Flags = DEFAULTS) => tuneKey('matmul', shape, 'f32', c, f);
  t.equal(key('M8 N8 K8'), key('M8 N8 K8'), 'the same inputs, the same key');
  // Literals: keys name entries in files written by earlier processes, so they must not drift
  // (the flags hash changes with the set of plan flags, on purpose: a new flag can change plans).
  t.match(key('M8 N8 K8'), /^matmul M8 N8 K8 f32 caps=d6f0f7fd flags=[0-9a-f]{8} adapter=eb10ebdb$/);
  t.equal(adapterId(LAVAPIPE_CAPS), 'eb10ebdbf6b8d06b', 'FNV-1a of vendor, description and features');
  t.not(key('M8 N8 K8'), key('M8 N8 K16'), 'shapes');
  t.not(key('M8 N8 K8'), key('M8 N8 K8', H100_CAPS), 'devices');
  t.not(key('M8 N8 K8'), key('M8 N8 K8', { ...LAVAPIPE_CAPS, description: 'mesa llvmpipe (LLVM 20.1.0, 256 bits)' }), 'adapters of the same kind');
  t.not(key('M8 N8 K8'), key('M8 N8 K8', { ...LAVAPIPE_CAPS, hostThreads: 16 }), 'capability fields the plans read');
  t.not(key('M8 N8 K8'), key('M8 N8 K8', LAVAPIPE_CAPS, { ...DEFAULTS, matmulSubgroups: false }), 'plan flags');
  t.equal(key('M8 N8 K8'), key('M8 N8 K8', LAVAPIPE_CAPS, { ...DEFAULTS, logCompile: true }), 'not other flags');
});

t.test('the file store writes atomically and reads back', async (t) => {
  const dir = cacheDir(t);
  const s = fileTuneStore(join(dir, 'sub'));
  t.equal(s.load('abc'), null, 'no file yet');
  s.save('abc', '{"x":1}');
  t.equal(s.load('abc'), '{"x":1}');
  t.same(readdirSync(join(dir, 'sub')), ['autotune-abc.json'], 'no temporary file left');
  setTuneStore(fileTuneStore()); // back to the flag-driven store node.ts installs
});

t.test('tune: a candidate that throws is skipped with a warning, the others still compete', async (t) => {
  resetAutotune();
  let result: Awaited<ReturnType<typeof tune<number>>> | null = null;
  const lines = await warnings(async () => {
    result = await tune([0, 1, 2], (p) => {
      if (p === 1) throw new Error('no such kernel\nsecond line');
      matmul(A, B).dispose();
    }, (p) => `c${p}`);
  });
  t.same(lines, ['[vq] autotune: candidate c1 failed (no such kernel); skipped']);
  t.equal(result!.times.length, 3);
  t.equal(result!.times[1].ms, Infinity);
  t.not(result!.best, 1, 'the failed candidate is never chosen');
  const n = autotuneCounters().timings;
  t.ok(n >= 3 && n <= 3 + 2 * 3 + 2 * 3, `a warm-up each, three rounds unless pruned, three more to confirm a win: ${n} timings`);
});

t.test('flag autotune auto tunes on a GPU and keeps the rules on a CPU device', async (t) => {
  t.equal(autotuneMode({ autotune: 'auto' }, { isCpu: false }), 'on');
  t.equal(autotuneMode({ autotune: 'auto' }, { isCpu: true }), 'off');
  for (const m of ['on', 'off', 'cached'] as const) {
    t.equal(autotuneMode({ autotune: m }, { isCpu: true }), m);
    t.equal(autotuneMode({ autotune: m }, { isCpu: false }), m);
  }
});
