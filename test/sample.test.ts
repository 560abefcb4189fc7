// The categorical draw on the GPU (engine/sample.ts) against the float64 reference: the same
// code for the same uniforms, at every temperature, with ties, and u at 0 and just under 1; the
// strided layout the sampler uses (logits [n, K, h, w], codes [n, h, w]) leaves other codes alone.
import t from 'tap';
import { gpu } from './helpers.js';
import { Rng } from '../engine/random.js';
import { sampleCategoricalCpu, sampleCategoricalInto } from '../engine/sample.js';
import { tensor } from '../engine/tensor.js';

await gpu(t);

/** The GPU draw of row-major logits [rows, K] with one uniform per row. */
async function drawGpu(logits: Float32Array, u: Float32Array, rows: number, K: number, temperature: number): Promise<Uint32Array> {
  const l = tensor(logits, [rows, K]);
  const uu = tensor(u, [rows]);
  const out = tensor(new Uint32Array(rows).fill(999), [rows], 'u32');
  sampleCategoricalInto(l, uu, out, { rows, K, rowStride: K, kStride: 1, outStride: 1, temperature });
  const v = (await out.read()) as Uint32Array;
  l.dispose();
  uu.dispose();
  out.dispose();
  return v;
}

/** How far u * total is from the nearest CDF boundary of the row, relative to the total (f64). */
function margin(logits: Float32Array, u: number, s: number, K: number, T: number): number {
  let m = -Infinity;
  for (let k = 0; k < K; k++) m = Math.max(m, logits[s * K + k]);
  const w = Array.from({ length: K }, (_, k) => Math.exp((logits[s * K + k] - m) / T));
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  let d = Infinity;
  for (const x of w) {
    acc += x;
    d = Math.min(d, Math.abs(acc / total - u));
  }
  return d;
}

const U_JUST_BELOW_1 = 1 - 2 ** -24; // the largest f32 below 1

t.test('random logits: the GPU draw is the float64 inverse-CDF draw for the same uniforms', async (t) => {
  const rng = new Rng(11);
  for (const [rows, K, T, spread] of [
    [200, 512, 1, 3],
    [200, 16, 1, 3],
    [100, 512, 0.5, 5],
    [100, 64, 1e-6, 3],
    [100, 64, 1e-40, 3],
    [100, 64, 1e6, 3],
    [100, 7, 1e30, 3],
  ] as const) {
    const logits = Float32Array.from({ length: rows * K }, () => (rng.next() * 2 - 1) * spread);
    const u = Float32Array.from({ length: rows }, () => rng.next());
    u[0] = 0;
    u[1] = U_JUST_BELOW_1;
    const gpuCodes = await drawGpu(logits, u, rows, K, T);
    const ref = sampleCategoricalCpu(logits, u, rows, K, T);
    let compared = 0;
    const bad: string[] = [];
    for (let s = 0; s < rows; s++) {
      // f32 sums differ from f64 ones in the last bits: skip a uniform within 1e-5 of a boundary
      if (s > 1 && margin(logits, u[s], s, K, T) < 1e-5) continue;
      compared++;
      if (gpuCodes[s] !== ref[s]) bad.push(`row ${s}: gpu ${gpuCodes[s]} ref ${ref[s]} (u ${u[s]})`);
    }
    t.same(bad, [], `K ${K}, T ${T}: ${compared} of ${rows} rows compared, all equal`);
    t.ok(compared >= rows - 3, `at most 3 rows near a boundary (${rows - compared})`);
    if (T <= 1e-6) {
      const argmax = sampleCategoricalCpu(logits, u, rows, K, 0);
      t.same(gpuCodes, argmax, `T ${T}: every draw is the argmax`);
    }
    if (T >= 1e6) {
      const uniform = Array.from(u, (x) => Math.floor(x * K));
      const off = uniform.filter((c, s) => c !== gpuCodes[s]).length;
      t.ok(off <= 3, `T ${T}: nearly uniform, code = floor(u K) but for ${off} rows near a boundary`);
    }
  }
});

t.test('edge cases: ties, u = 0, u just under 1, temperature 0', async (t) => {
  // ties: 4 equal logits split [0, 1) into quarters
  const tie = new Float32Array([2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
  const uq = new Float32Array([0.1, 0.3, 0.6, 0.9]);
  t.same([...(await drawGpu(tie, uq, 4, 4, 1))], [0, 1, 2, 3], 'equal logits: the quarter u falls in');
  t.same([...(await drawGpu(tie, uq, 4, 4, 0))], [0, 0, 0, 0], 'temperature 0 with ties: the first argmax');
  // two tied maxima at a tiny temperature: the others get weight 0, the tie splits [0, 1) in halves
  const two = new Float32Array([0, 5, 5, 1, 0, 5, 5, 1, 0, 5, 5, 1, 0, 5, 5, 1]);
  const uh = new Float32Array([0, 0.3, 0.7, U_JUST_BELOW_1]);
  t.same([...(await drawGpu(two, uh, 4, 4, 1e-6))], [1, 1, 2, 2], 'tied maxima at T 1e-6: u picks one of them, never a zero-weight code');
  t.same([...sampleCategoricalCpu(two, uh, 4, 4, 1e-6)], [1, 1, 2, 2], 'the reference agrees');
  // u = 0 draws the first code of non-zero weight; u just under 1 the last, even when f32 rounding
  // puts u * total past the final cumulative sum
  const l = new Float32Array([-3, 0, 1, -3, 0, 1, 0, 1, -200, 0, 1, -200]);
  const ue = new Float32Array([0, U_JUST_BELOW_1, 0, U_JUST_BELOW_1]);
  const codes = [...(await drawGpu(l, ue, 4, 3, 1))];
  t.same(codes, [0, 2, 0, 1], 'u 0: the first code; u ~1: the last code of non-zero weight (not one whose exp underflows)');
  t.same([...sampleCategoricalCpu(l, ue, 4, 3, 1)], [0, 2, 0, 1], 'the reference agrees');
  const one = new Float32Array(32).fill(0.25);
  const big = Float32Array.from({ length: 32 * 300 }, (_, i) => (i % 300 === 7 ? 1 : 0));
  const many = await drawGpu(big, Float32Array.from({ length: 32 }, () => U_JUST_BELOW_1), 32, 300, 1);
  t.ok(many.every((c) => c === 299), 'u ~1 over 300 codes: the last code');
  t.same([...(await drawGpu(one, new Float32Array(32).fill(0.5), 32, 1, 1))], new Array(32).fill(0), 'K = 1: always code 0');
});

t.test('the sampler layout: logits [n, K, h, w] at one position, codes [n, h, w], uniforms by position', async (t) => {
  const [n, K, h, w] = [3, 5, 2, 3];
  const HW = h * w;
  const rng = new Rng(2);
  const logits = Float32Array.from({ length: n * K * HW }, () => rng.next() * 4);
  const u = Float32Array.from({ length: n * HW }, () => rng.next());
  const lt = tensor(logits, [n, K, h, w]);
  const ut = tensor(u, [HW * n]);
  const codes = tensor(new Uint32Array(n * HW).fill(77), [n, h, w], 'u32');
  const p = 4;
  sampleCategoricalInto(lt, ut, codes, { rows: n, K, rowStride: K * HW, kStride: HW, offset: p, uOffset: p * n, outStride: HW, outOffset: p, temperature: 1 });
  const got = (await codes.read()) as Uint32Array;
  const rowLogits = new Float32Array(n * K);
  for (let s = 0; s < n; s++) for (let k = 0; k < K; k++) rowLogits[s * K + k] = logits[s * K * HW + k * HW + p];
  const ref = sampleCategoricalCpu(rowLogits, u.subarray(p * n, p * n + n), n, K, 1);
  for (let s = 0; s < n; s++) {
    t.equal(got[s * HW + p], ref[s], `sample ${s}: the reference draw at position ${p}`);
    for (let q = 0; q < HW; q++) if (q !== p) t.equal(got[s * HW + q], 77, `sample ${s}, position ${q} untouched`);
  }
  t.throws(() => sampleCategoricalInto(lt, ut, codes, { rows: n, K, rowStride: K * HW, kStride: HW, offset: HW, outStride: HW, temperature: 1 }), /past/);
  t.throws(() => sampleCategoricalInto(lt, ut, lt, { rows: n, K, rowStride: K * HW, kStride: HW, outStride: HW, temperature: 1 }), /u32 out/);
  t.throws(() => sampleCategoricalInto(lt, ut, codes, { rows: n, K, rowStride: K * HW, kStride: HW, outStride: HW, temperature: -1 }), /temperature/);
  lt.dispose();
  ut.dispose();
  codes.dispose();
});
