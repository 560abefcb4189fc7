// The benchmark harness's statistics and its round-robin mode: quartiles, per-round ratios, the
// weight-gradient-over-forward table, the order in which interleaved cases run, the cases'
// kernel plans, back-to-back wall samples and peak bytes; bench/compare.ts's table and goals;
// bench/torch_ref.py's training-step arms on the CPU.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { rt } from '../engine/runtime.js';
import { gpu } from './helpers.js';
import { type TorchPython, runPython, torchTest } from './torch/python.js';
import { type BenchCase, type BenchEntry, backToBackRuns, formatPlans, formatTable, formatWgradVsForward, pairedRatio, runCase, runInterleaved, stats } from '../bench/harness.js';
import { type TorchResults, type TorchStep, formatComparison, judge, readOurs, readTorch, speedup } from '../bench/compare.js';

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
    back_to_back: 1,
    images_per_s: null,
    peak_bytes: 0,
    peak_live_bytes: 0,
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

t.test('back to back: a wall sample runs the case N times with one sync, and reports per run', async (t) => {
  let runs = 0;
  const fake = (backToBack?: { gpu: number; cpu: number }): BenchCase => ({
    name: 'b2b', family: 'fake', params: {}, flops: 0, bytes: 0, reps: 2, warmup: 1, backToBack, images: 4,
    setup: () => ({ run: () => void runs++, dispose: () => {} }),
  });
  const e = await runCase(fake({ gpu: 7, cpu: 3 }));
  // one warm-up run, then per sample 3 back-to-back runs and one timed on the GPU (a CPU device)
  t.equal(runs, 1 + 2 * (3 + 1));
  t.equal(e.back_to_back, 3, 'the CPU count on this CPU device');
  t.equal(e.images_per_s, 4 / (e.wall_ms / 1e3), 'images/s from wall ms per run');
  runs = 0;
  const steps = await runCase(fake({ gpu: 7, cpu: 3 }), { steps: 5 });
  t.equal(runs, 1 + 2 * (5 + 1), '--steps replaces the case\'s count');
  t.equal(steps.back_to_back, 5);
  runs = 0;
  const single = await runCase(fake(), { steps: 5 });
  t.equal(runs, 1 + 2 * (1 + 1), 'a case without backToBack: run + sync, whatever --steps says');
  t.equal(single.back_to_back, 1);
  t.equal(backToBackRuns({ backToBack: { gpu: 20, cpu: 2 } }, false), 20);
  t.equal(backToBackRuns({ backToBack: { gpu: 20, cpu: 2 } }, true), 2);
  t.equal(backToBackRuns({}, false, 9), 1);
});

t.test('peak bytes: what the first run holds at its peak beyond what was held before the case', async (t) => {
  const r = rt();
  const other = r.pool.acquire(1 << 20); // another case's data: not counted
  const fake: BenchCase = {
    name: 'peak', family: 'fake', params: {}, flops: 0, bytes: 0, reps: 1, warmup: 1,
    setup: () => {
      const weights = r.pool.acquire(65536);
      return {
        run: () => {
          // a temporary released and another taken before any submit: the first cannot be
          // reused yet, so the pool holds both (live peak 16 KiB, held 32 KiB)
          r.pool.release(r.pool.acquire(16384));
          r.pool.release(r.pool.acquire(16384));
        },
        dispose: () => r.pool.release(weights),
      };
    },
  };
  const e = await runCase(fake);
  t.equal(e.peak_live_bytes, 65536 + 16384, 'the case\'s data plus its largest live temporary');
  t.equal(e.peak_bytes, 65536 + 32768, 'plus temporaries waiting for a submit');
  t.match(formatTable([e]), /\b0\.1\b/, 'the table shows peak MiB');
  r.pool.release(other);
});

// ---- bench/compare.ts: our step beside PyTorch's arms

function step(batch: number, wall: number, peakMiB: number): BenchEntry {
  return { ...entry(`train_step.seed.b${batch}`, { model: 'seed', batch }, [wall]), family: 'train_step', back_to_back: 20, images_per_s: batch / (wall / 1e3), peak_bytes: peakMiB * 2 ** 20 };
}

function arm(arm: string, batch: number, wall: number | null, peakMiB: number | null, extra: Partial<TorchStep> = {}): TorchStep {
  if (wall === null) return { arm, batch, status: 'skipped', reason: 'no bf16', ...extra };
  return { arm, batch, status: 'ok', reason: null, wall_ms: wall, images_per_s: batch / (wall / 1e3), gpu_ms: wall * 0.9, peak_bytes: peakMiB === null ? null : peakMiB * 2 ** 20, ...extra };
}

const torchFixture = (): TorchResults => ({
  schema: 'torch_ref/2',
  info: { torch: '2.11.0', device: 'NVIDIA H100', steps: 20, rounds: 5 },
  train_step: [
    arm('strict', 32, 9, 130), arm('default', 32, 7.9, 120), arm('tuned', 32, null, null),
    arm('strict', 256, 40, 820), arm('default', 256, 30, 800),
    arm('tuned', 256, 19, 500, { compile: { mode: 'reduce-overhead', status: 'failed', reason: 'BackendCompilerFailed: boom' } }),
  ],
});

t.test('compare: each goal met, missed, or unknown with the reason', async (t) => {
  const ours = [step(32, 4, 100), step(256, 20, 900)];
  const v = judge(ours, torchFixture());
  const byName = (kind: string, batch: number, a: string) => v.find((x) => x.goal.kind === kind && x.goal.batch === batch && x.goal.arm === a)!;
  t.match(byName('speedup', 256, 'default'), { status: 'met', value: 1.5 }, '30 / 20 = 1.5: met at the bound');
  t.match(byName('speedup', 256, 'tuned'), { status: 'missed', value: 0.95 });
  t.match(byName('speedup', 32, 'default'), { status: 'missed' }, '7.9 / 4 = 1.975 < 2');
  t.match(byName('memory', 32, 'default'), { status: 'met' }, '100 MiB <= 120 MiB');
  t.match(byName('memory', 256, 'default'), { status: 'missed', value: 900 / 800 });
  const skipped = judge(ours, torchFixture(), [{ kind: 'speedup', batch: 32, arm: 'tuned', atLeast: 1 }])[0];
  t.match(skipped, { status: 'unknown', value: null, reason: 'tuned arm skipped: no bf16' });
  t.match(judge([], torchFixture())[0], { status: 'unknown', reason: /no train_step.seed.b256 in ours/ });
  t.ok(judge(ours, null).every((x) => x.status === 'unknown' && /in torch/.test(x.reason!)), 'no torch results: every goal unknown');
  const noPeak = torchFixture();
  noPeak.train_step[1].peak_bytes = null;
  t.match(judge(ours, noPeak)[3], { status: 'unknown', reason: /no peak bytes/ });
  t.equal(speedup(ours[0], arm('x', 32, 8, 0)), 2);
  t.equal(speedup(ours[0], arm('x', 32, null, null)), null, 'a skipped arm has no speedup');
});

t.test('compare: ours is the fastest seed step variant at each batch (op by op, replayed, f16)', async (t) => {
  const replayed = { ...step(256, 15, 700), name: 'replay_step.seed.b256', family: 'replay_step' };
  const half = { ...step(256, 12, 500), name: 'replay_step.seed.f16.b256', family: 'replay_step' };
  const quick = { ...step(256, 1, 10), name: 'replay_step.quick.b256', family: 'replay_step', params: { model: 'quick', batch: 256 } };
  const v = judge([step(256, 20, 900), replayed, half, quick], torchFixture());
  t.match(v.find((x) => x.goal.kind === 'speedup' && x.goal.batch === 256 && x.goal.arm === 'default'), { status: 'met', value: 2.5 }, '30 / 12: the f16 replayed step, not the quick model');
  t.match(formatComparison([step(256, 20, 900), replayed, half], torchFixture()), /\| 256 \| replay_step\.seed\.f16\.b256 \| 12\.00 \|/);
});

t.test('compare: one markdown row per batch, notes for skipped arms and torch.compile', async (t) => {
  const quick = { ...step(8, 1, 1), params: { model: 'quick', batch: 8 } };
  const md = formatComparison([step(32, 4, 100), step(256, 20, 900), quick], torchFixture(), ['torch (x.json): a note']);
  const lines = md.split('\n');
  const header = lines.find((l) => l.startsWith('| batch'))!;
  const cols = header.split('|').length;
  const rows = lines.filter((l) => /^\| \d/.test(l));
  t.same(rows.map((l) => l.split('|')[1].trim()), ['32', '256'], 'the seed model\'s batches only, in order');
  t.ok(rows.every((l) => l.split('|').length === cols), 'every row has every column');
  const cells = (l: string) => l.split('|').slice(1, -1).map((c) => c.trim());
  const r256 = cells(rows[1]);
  const col = (name: string) => cells(header).indexOf(name);
  t.equal(r256[col('ours ms')], '20.00');
  t.equal(r256[col('ours img/s')], '12800');
  t.equal(r256[col('vs default')], '1.50x');
  t.equal(r256[col('vs tuned')], '0.95x');
  t.equal(r256[col('peak MiB ours')], '900');
  t.equal(r256[col('peak MiB default')], '800');
  t.match(r256[col('goals')], />= 1.5x default: met \(1\.50x\); >= 1x tuned: MISSED \(0\.95x\); peak <= default: MISSED/);
  t.equal(cells(rows[0])[col('tuned ms')], '-', 'a skipped arm: no number');
  t.match(md, /- torch tuned B=32 skipped: no bf16/);
  t.match(md, /- torch tuned B=256: torch.compile\(mode=reduce-overhead\) failed: BackendCompilerFailed: boom/);
  t.match(md, /- torch \(x\.json\): a note/);
  t.match(md, /- steps per sync: ours 20, torch 20/);
  t.match(md, /ours vs PyTorch 2\.11\.0 on NVIDIA H100/);
});

t.test('compare: unreadable inputs become notes, and the CLI still prints our numbers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vq-compare-'));
  const oursFile = join(dir, 'ours.json');
  writeFileSync(oursFile, JSON.stringify([step(32, 4, 100)]));
  writeFileSync(join(dir, 'bad.json'), '{"schema": ');
  writeFileSync(join(dir, 'old.json'), JSON.stringify({ info: {}, entries: [] }));
  t.match(readTorch(join(dir, 'none.json')), { torch: null, note: /none\.json\): no such file/ });
  t.match(readTorch(join(dir, 'bad.json')), { torch: null, note: /not valid JSON/ });
  t.match(readTorch(join(dir, 'old.json')), { torch: null, note: /not torch_ref\.py's JSON \(schema torch_ref\/2, got null\)/ });
  t.match(readOurs(join(dir, 'old.json')), { entries: [], note: /not the JSON array/ });
  const md = join(dir, 'out.md');
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'bench/compare.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
  const ok = run([oursFile, join(dir, 'none.json'), '--out', md]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /\| 32 \| train_step\.seed\.b32 \| 4\.00 \| 8000 \|/, 'our row, torch missing');
  t.match(ok.stdout, /no such file \(that side failed or did not run\)/);
  t.equal(readFileSync(md, 'utf8'), ok.stdout, '--out writes the same markdown');
  const bad = run([oursFile]);
  t.equal(bad.status, 1);
  t.match(bad.stderr.trim(), /^usage: npx tsx bench\/compare\.ts OURS\.json TORCH\.json/);
  rmSync(dir, { recursive: true, force: true });
});

// ---- bench/torch_ref.py on the CPU (Debian's PyTorch in CI)

const TORCH_REF = resolve(import.meta.dirname, '..', 'bench', 'torch_ref.py');

torchTest(t, 'torch_ref.py --tiny: three arms of the training step on the CPU, JSON that compare.ts reads', async (t: Test, py: TorchPython) => {
  const dir = mkdtempSync(join(tmpdir(), 'vq-torchref-'));
  const out = join(dir, 'torch.json');
  runPython(py, [TORCH_REF, '--tiny', '--json', out], { timeout: 180_000 });
  const j = JSON.parse(readFileSync(out, 'utf8'));
  t.equal(j.schema, 'torch_ref/2');
  t.match(j.info, { torch: py.version, device_kind: 'cpu', steps: 2, rounds: 1, warmup: 1 });
  t.same(Object.keys(j.info.arms), ['strict', 'default', 'tuned']);
  t.match(j.info.arms.tuned, { autocast: 'bfloat16', memory_format: 'channels_last' });
  t.same(j.train_step.map((s: TorchStep) => [s.arm, s.batch, s.status]), [['strict', 2, 'ok'], ['default', 2, 'ok'], ['tuned', 2, 'ok']]);
  for (const s of j.train_step) {
    t.ok(s.wall_ms > 0 && s.wall_ms_rounds.length === 1, `${s.arm}: wall ms of one round`);
    t.ok(Math.abs(s.images_per_s - 2000 / s.wall_ms) < 1e-9 * s.images_per_s, `${s.arm}: images/s = batch / wall seconds`);
    t.match(s, { gpu_ms: null, peak_bytes: null }, `${s.arm}: no GPU time or allocator peak on the CPU`);
  }
  const [strict, dflt, tuned] = j.train_step;
  const tf32Off = strict.settings['cudnn.allow_tf32'] === false || strict.settings['cudnn.conv.fp32_precision'] === 'ieee';
  t.ok(tf32Off, `strict reads TF32 off: ${JSON.stringify(strict.settings)}`);
  t.equal(dflt.compile.status, 'not used');
  t.match(tuned.compile, { mode: 'reduce-overhead', status: /^(unavailable|ok|failed)$/ });
  const md = formatComparison([step(2, 50, 1)], readTorch(out).torch);
  const row = md.split('\n').find((l) => l.startsWith('| 2 |'))!.split('|').map((c) => c.trim());
  const head = md.split('\n').find((l) => l.startsWith('| batch'))!.split('|').map((c) => c.trim());
  for (const a of ['strict', 'default', 'tuned']) {
    t.equal(Number(row[head.indexOf(`${a} ms`)]).toFixed(2), j.train_step.find((s: TorchStep) => s.arm === a).wall_ms.toFixed(2), `compare.ts reads ${a}'s wall ms from the real JSON`);
  }
  rmSync(dir, { recursive: true, force: true });
});

torchTest(t, 'torch_ref.py: a failing torch.compile is recorded and the tuned arm runs eager', async (t: Test, py: TorchPython) => {
  const code = [
    'import json, sys, torch',
    'sys.dont_write_bytecode = True',
    `sys.path.insert(0, ${JSON.stringify(dirname(TORCH_REF))})`,
    'import torch_ref',
    'def broken(fn, **kw): raise RuntimeError("inductor exploded\\nsecond line")',
    'torch.compile = broken',
    'failed = torch_ref.run_arm("tuned", 2, "cpu", 1, 1, 1, "reduce-overhead")',
    'torch.compile = lambda fn, **kw: fn',
    'ok = torch_ref.run_arm("tuned", 2, "cpu", 1, 1, 1, "max-autotune")',
    'print(json.dumps([failed, ok]))',
  ].join('\n');
  const [failed, ok] = JSON.parse(runPython(py, ['-c', code], { timeout: 120_000 }).trim().split('\n').pop()!);
  t.match(failed, { status: 'ok', compile: { mode: 'reduce-overhead', status: 'failed', reason: 'RuntimeError: inductor exploded' } });
  t.ok(failed.wall_ms > 0, 'eager numbers after the failure');
  t.match(ok, { status: 'ok', compile: { mode: 'max-autotune', status: 'ok', reason: null } });
});
