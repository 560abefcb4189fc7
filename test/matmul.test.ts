// matmul: both schedules against a float64 reference on awkward shapes (primes, 1s, tall-skinny,
// batched, broadcast batches, transposed operands, fused bias + relu), finite-difference
// gradients, and the errors.
import t, { type Test } from 'tap';
import { assertClose, gradcheck, gpu, assertBitwise } from './helpers.js';
import { Rng } from '../engine/random.js';
import { flags, parseFlags, setFlags, withFlags } from '../engine/flags.js';
import { type Tensor, tensor, zeros } from '../engine/tensor.js';
import { type MatmulSchedule, matmul, matmulSchedule, sumRows } from '../engine/matmul.js';
import { refMatmul } from './ref/matmul.js';
import { MATMUL_CASES, matmulTol, type MatmulCase } from './cases/matmul.js';

const r = await gpu(t);
const rng = new Rng(20240611);
const rand = (n: number) => rng.uniformArray(n, -1, 1);
const size = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

async function checkCase(tt: Test, c: MatmulCase, schedule: MatmulSchedule) {
  const ad = rand(size(c.a));
  const bd = rand(size(c.b));
  const opts = c.opts ?? {};
  const N = opts.transB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const biasData = opts.bias ? rand(N) : undefined;
  const a = tensor(ad, c.a);
  const b = tensor(bd, c.b);
  const bias = biasData ? tensor(biasData, [N]) : null;
  const out = matmul(a, b, { ...opts, bias, schedule });
  const ref = refMatmul(ad, c.a, bd, c.b, { transA: opts.transA, transB: opts.transB, bias: biasData, relu: opts.activation === 'relu' });
  tt.same(out.shape, ref.shape, `${c.name}: shape`);
  assertClose(tt, await out.read(), ref.data, matmulTol(ref.K), `${c.name} (${schedule})`);
  for (const x of [a, b, bias, out]) x?.dispose();
}

t.test('the device picks a schedule; flag matmulSchedule (VQ_MATMUL_SCHEDULE) overrides it', async (t) => {
  t.equal(matmulSchedule(), r.caps.isCpu ? 'reg' : 'smem');
  withFlags({ matmulSchedule: 'smem' }, () => {
    t.equal(matmulSchedule(), 'smem');
    t.equal(matmulSchedule('reg'), 'reg', 'an explicit option wins over the flag');
  });
  t.throws(() => setFlags({ matmulSchedule: 'fast' as 'reg' }), /flag matmulSchedule \(VQ_MATMUL_SCHEDULE\) must be one of auto, reg, smem, got 'fast'/);
  t.throws(() => parseFlags({ VQ_MATMUL_SCHEDULE: 'fast' }), /VQ_MATMUL_SCHEDULE must be one of auto, reg, smem, got 'fast'/);
  t.equal(flags().matmulSchedule, 'auto', 'a refused setting changes nothing');
});

for (const schedule of ['reg', 'smem'] as const) {
  t.test(`forward, ${schedule} schedule, against float64`, async (t) => {
    for (const c of MATMUL_CASES) await checkCase(t, c, schedule);
  });
}

t.test('forward, reg schedule without subgroup sharing', async (t) => {
  await withFlags({ matmulSubgroups: false }, async () => {
    // one case per load/store variant: scalar B and output, vec4 B and output
    for (const c of MATMUL_CASES.filter((c) => /primes|multi-tile/.test(c.name))) {
      await checkCase(t, c, 'reg');
    }
  });
});

const input = (shape: number[]) => ({ data: rand(size(shape)), shape });

for (const schedule of ['reg', 'smem'] as const) {
  t.test(`gradients, ${schedule}: a [3,4] @ b [4,5]`, async (t) => {
    const f = await gradcheck(([a, b]) => matmul(a, b, { schedule }), [input([3, 4]), input([4, 5])]);
    t.same(f, []);
  });
}

t.test('gradients: every transpose combination', async (t) => {
  for (const [transA, transB] of [[true, false], [false, true], [true, true]]) {
    const a = input(transA ? [4, 3] : [3, 4]);
    const b = input(transB ? [5, 4] : [4, 5]);
    const f = await gradcheck(([x, y]) => matmul(x, y, { transA, transB }), [a, b]);
    t.same(f, [], `transA ${transA} transB ${transB}`);
  }
});

t.test('gradients: broadcast batches sum into the broadcast operand', async (t) => {
  const f1 = await gradcheck(([a, b]) => matmul(a, b), [input([2, 3, 4]), input([4, 5])]);
  t.same(f1, [], '[2,3,4] @ [4,5]');
  const f2 = await gradcheck(([a, b]) => matmul(a, b), [input([3, 4]), input([2, 4, 5])]);
  t.same(f2, [], '[3,4] @ [2,4,5]');
  const f3 = await gradcheck(([a, b]) => matmul(a, b, { transB: true }), [input([2, 2, 3, 4]), input([2, 5, 4])]);
  t.same(f3, [], '[2,2,3,4] @ [2,5,4]^T (suffix broadcast)');
  const f4 = await gradcheck(([a, b]) => matmul(a, b, { transA: true }), [input([3, 2, 4, 3]), input([4, 2])]);
  t.same(f4, [], '[3,2,4,3]^T @ [4,2]');
});

t.test('gradients: fused bias + relu (a, b and bias)', async (t) => {
  const a = input([4, 5]);
  const b = input([5, 6]);
  const bias = input([6]);
  // finite differences are only valid away from relu's kink: check the margin first
  const z = refMatmul(a.data, a.shape, b.data, b.shape, { bias: bias.data });
  const eps = 1e-3;
  const margin = Math.min(...z.data.map(Math.abs));
  t.ok(margin > 20 * eps, `outputs stay ${margin.toFixed(4)} away from 0 (> ${20 * eps})`);
  t.ok(z.data.some((v) => v < 0) && z.data.some((v) => v > 0), 'relu is active on some outputs and not on others');
  for (const schedule of ['reg', 'smem'] as const) {
    const f = await gradcheck(([x, y, c]) => matmul(x, y, { bias: c, activation: 'relu', schedule }), [a, b, bias], { eps });
    t.same(f, [], schedule);
  }
});

t.test('sumRows (the bias gradient) over many rows', async (t) => {
  const rows = 70001;
  const n = 3;
  const d = rand(rows * n);
  const x = tensor(d, [rows, n]);
  const s = sumRows(x, rows, n);
  const ref = new Float64Array(n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) ref[j] += d[i * n + j];
  t.same(s.shape, [n]);
  // f32 partial sums of 256 then of the partials: error well under 1e-3 for |sum| ~ 100
  assertClose(t, await s.read(), ref, { rtol: 1e-5, atol: 1e-3 }, 'column sums');
  x.dispose();
  s.dispose();
});

t.test('errors name the shapes', async (t) => {
  const z = (s: number[]) => zeros(s);
  t.throws(() => matmul(z([2, 3]), z([4, 5])), /matmul: inner dimensions of shapes \[2,3\] and \[4,5\] do not match \(3 vs 4\)/);
  t.throws(
    () => matmul(z([3, 2]), z([4, 5]), { transA: true }),
    /inner dimensions of shapes \[3,2\] \(transposed\) and \[4,5\] do not match \(3 vs 4\)/,
  );
  t.throws(() => matmul(z([3]), z([3, 4])), /operands need at least 2 dimensions, got shapes \[3\] and \[3,4\]/);
  t.throws(() => matmul(z([2, 3, 4]), z([3, 4, 5])), /batch dimensions of shapes \[2,3,4\] and \[3,4,5\] do not broadcast/);
  t.throws(() => matmul(z([2, 1, 3, 4]), z([2, 3, 4, 5])), /broadcast in a way matmul does not support/);
  t.throws(() => matmul(z([2, 3]), z([3, 4]), { bias: z([5]) }), /bias shape \[5\] does not match the N = 4 columns/);
  const i = tensor(new Int32Array(6), [2, 3]);
  t.throws(() => matmul(i, z([3, 1])), /matmul: expected f32/);
  i.dispose();
});

t.test('results stay identical across repeated launches (no stale state between pipelines)', async (t) => {
  const a = tensor(rand(50 * 30), [50, 30]);
  const b = tensor(rand(30 * 70), [30, 70]);
  const x: Tensor[] = [];
  for (const schedule of ['reg', 'smem', 'reg'] as const) x.push(matmul(a, b, { schedule }));
  const [v0, v1, v2] = await Promise.all(x.map((y) => y.read()));
  assertBitwise(t, v0 as Float32Array, v2 as Float32Array, 'reg twice gives bit-identical results');
  assertClose(t, v1, v0, { rtol: 1e-5, atol: 1e-5 }, 'smem agrees with reg');
  for (const y of [a, b, ...x]) y.dispose();
});
