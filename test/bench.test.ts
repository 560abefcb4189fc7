// The benchmark harness's statistics and its round-robin mode: quartiles, per-round ratios, the
// weight-gradient-over-forward table, the order in which interleaved cases run, and the cases'
// kernel plans.
import t from 'tap';
import { gpu } from './helpers.js';
import { type BenchCase, type BenchEntry, formatPlans, formatTable, formatWgradVsForward, pairedRatio, runCase, runInterleaved, stats } from '../bench/harness.js';

await gpu(t);

function entry(name: string, params: Record<string, unknown>, samples: number[], flops = 1e9): BenchEntry {
  const s = stats(samples);
  return {
    name,
    family: 'conv2d',
    params,
    median_ms: s.median,
    gflops: flops / (s.median * 1e6),
    gbps: 0,
    vs: null,
    timing: 'gpu',
    min_ms: s.min,
    max_ms: s.max,
    q1_ms: s.q1,
    q3_ms: s.q3,
    wall_ms: s.median,
    reps: samples.length,
    runs_per_sample: 1,
    samples_ms: samples,
  };
}

t.test('stats: median and quartiles interpolate between order statistics', async (t) => {
  t.same(stats([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, q1: 1.75, q3: 3.25 });
  t.same(stats([7]), { median: 7, min: 7, max: 7, q1: 7, q3: 7 });
  t.ok(Number.isNaN(stats([]).median), 'no samples: NaN');
});

t.test('pairedRatio: the median of the round-by-round ratios, robust to drift', async (t) => {
  // The device slows 3x in the middle rounds: the per-round ratio stays 0.5, the ratio of
  // medians does not.
  const fwd = entry('f', {}, [10, 30, 30, 30, 10]);
  const wgrad = entry('w', {}, [5, 15, 15, 5, 5]);
  t.equal(pairedRatio(wgrad, fwd), 0.5);
  t.equal(wgrad.median_ms / fwd.median_ms, 5 / 30);
  t.equal(pairedRatio(entry('a', {}, [2, 4]), entry('b', {}, [1, 2, 8])), 2, 'only rounds both have');
  t.ok(Number.isNaN(pairedRatio(entry('a', {}, []), fwd)), 'no common rounds: NaN');
});

t.test('formatWgradVsForward pairs each layer and batch, or says nothing', async (t) => {
  const p = (layer: string, pass: string, batch: number) => ({ layer, pass, batch });
  const entries = [
    entry('conv.a.fwd.b2', p('a', 'fwd', 2), [10, 20, 10]),
    entry('conv.a.wgrad.b2', p('a', 'wgrad', 2), [8, 10, 9]),
    entry('conv.a.fwd.b4', p('a', 'fwd', 4), [40, 40, 40]),
    entry('conv.b.wgrad.b2', p('b', 'wgrad', 2), [1, 1, 1]), // no forward: no row
  ];
  const table = formatWgradVsForward(entries, true)!;
  const lines = table.split('\n');
  t.equal(lines.length, 3, 'title, header and one row');
  t.match(lines[2], /^a b2 +100\.00 +111\.11 +0\.900 +0\.800 +0\.800$/, 'medians 9/10, minimums 8/10, paired median of 0.8, 0.5, 0.9');
  t.match(formatWgradVsForward(entries, false)!.split('\n')[2], /0\.800 +-$/, 'no paired column without --interleave');
  t.equal(formatWgradVsForward(entries.slice(2), true), null);
});

t.test('runInterleaved takes one sample of each case per round, each up to its own repetitions', async (t) => {
  const log: string[] = [];
  const disposed: string[] = [];
  const fake = (name: string, reps: number): BenchCase => ({
    name,
    family: 'fake',
    params: {},
    flops: 0,
    bytes: 0,
    reps,
    warmup: 1,
    setup: () => ({ run: () => void log.push(name), dispose: () => void disposed.push(name) }),
  });
  const entries = await runInterleaved([fake('A', 3), fake('B', 1), fake('C', 2)]);
  // Set-up order warms each case once; then every sample runs a case twice (wall clock, then
  // GPU timestamps) on this CPU device.
  t.same(log, ['A', 'B', 'C', 'A', 'A', 'B', 'B', 'C', 'C', 'A', 'A', 'C', 'C', 'A', 'A']);
  t.same(entries.map((e) => [e.name, e.reps, e.samples_ms.length]), [['A', 3, 3], ['B', 1, 1], ['C', 2, 2]]);
  t.same(disposed, ['A', 'B', 'C'], 'every case disposed');
});

t.test('runInterleaved disposes every case set up when one fails', async (t) => {
  const disposed: string[] = [];
  const ok: BenchCase = { name: 'ok', family: 'fake', params: {}, flops: 0, bytes: 0, reps: 1, warmup: 0, setup: () => ({ run: () => {}, dispose: () => void disposed.push('ok') }) };
  const bad: BenchCase = { ...ok, name: 'bad', setup: () => ({ run: () => { throw new Error('boom'); }, dispose: () => void disposed.push('bad') }) };
  await t.rejects(runInterleaved([ok, bad]), /boom/);
  t.same(disposed, ['ok', 'bad']);
});

t.test('plans: entries carry their case\'s plan, printed as a case -> plan table', async (t) => {
  const fake = (name: string, plan?: () => string): BenchCase => ({
    name, family: 'fake', params: {}, flops: 0, bytes: 0, reps: 1, warmup: 0, plan,
    setup: () => ({ run: () => {}, dispose: () => {} }),
  });
  const [a, b] = await runInterleaved([fake('A', () => 'reg 32x8 sg b4o4'), fake('Bee')]);
  t.equal(a.plan, 'reg 32x8 sg b4o4');
  t.notOk('plan' in b, 'no plan: no field');
  t.same(JSON.parse(JSON.stringify(a)).plan, 'reg 32x8 sg b4o4', 'the JSON entry carries it');
  const bad = await runCase(fake('C', () => { throw new Error('no such tile'); }));
  t.equal(bad.plan, '(no plan: no such tile)', 'a failing plan is reported, the case still runs');
  t.equal(formatPlans([a, b, bad]), ['kernel plans:', 'A     reg 32x8 sg b4o4', 'C     (no plan: no such tile)'].join('\n'));
  t.equal(formatPlans([b]), null, 'no plans: no table');
  t.notMatch(formatTable([a]), /reg 32x8/, 'the timing table keeps its columns');
});
