// Platform-free test utilities (Node tests and the in-browser suite): float64 comparisons with
// stated tolerances, and a finite-difference gradient check.
import { Rng } from '../engine/random.js';
import { backward } from '../engine/autograd.js';
import { Tensor, shapeSize, tensor, tidy } from '../engine/tensor.js';

/**
 * Tolerance of an f32 sum of `terms` values in [-1, 1] against float64: the running partial
 * sums grow like sqrt(terms), and so does the count of roundings, so the error grows like
 * terms * 2^-24 (a mean divides that by terms).
 */
export function sumTolerance(terms: number, mean = false): Tolerance {
  return { rtol: 1e-6, atol: Math.max(1e-6, mean ? 2 ** -24 : terms * 2 ** -24) };
}

export function randomArray(rng: Rng, n: number, low = -1, high = 1): Float32Array {
  return rng.uniformArray(n, low, high);
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/**
 * Worst element of |actual - expected| - (atol + rtol * |expected|); <= 0 means all close.
 * Returns a description of the worst element for messages.
 */
export function compare(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6 }: Tolerance = {},
): { ok: boolean; worst: string } {
  if (actual.length !== expected.length) {
    return { ok: false, worst: `length ${actual.length} != expected ${expected.length}` };
  }
  let worstExcess = -Infinity;
  let worstI = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const excess = Number.isNaN(a) !== Number.isNaN(e) ? Infinity : Number.isNaN(a) ? -Infinity : Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess || (Number.isNaN(excess) && worstI < 0)) {
      worstExcess = excess;
      worstI = i;
    }
  }
  const ok = !(worstExcess > 0) || actual.length === 0;
  const worst = worstI >= 0 ? `worst at [${worstI}]: got ${actual[worstI]}, expected ${expected[worstI]} (rtol ${rtol}, atol ${atol})` : 'empty';
  return { ok, worst };
}

type Assert = { ok: (v: unknown, msg: string) => unknown };

export function assertClose(t: Assert, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, msg: string): void {
  const r = compare(actual, expected, tol);
  t.ok(r.ok, `${msg}: ${r.worst}`);
}

/**
 * Asserts two float arrays are bit for bit the same (NaN payloads and -0 included), with a
 * message naming the mismatch count and the first mismatch. Use it instead of t.same on large
 * arrays: tap's diff of two mismatching 20,000-element arrays took ~2 minutes, so a failure ran
 * a test file into its timeout instead of reporting.
 */
export function assertBitwise(t: Assert, actual: Float32Array, expected: Float32Array, msg: string): void {
  if (actual.length !== expected.length) {
    t.ok(false, `${msg}: length ${actual.length} != expected ${expected.length}`);
    return;
  }
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let first = -1;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  t.ok(count === 0, count === 0 ? msg : `${msg}: ${count} of ${a.length} differ, first at [${first}]: got ${actual[first]}, expected ${expected[first]}`);
}

export interface GradcheckInput {
  data: Float32Array;
  shape: number[];
}

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-2; smaller near kinks). */
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Random directions checked per input (default 3). */
  directions?: number;
  /** Inputs with at most this many elements are also checked element by element (default 24). */
  elementwiseUpTo?: number;
  seed?: number;
}

/**
 * Checks the analytic vector-Jacobian product of `fn` against central finite differences,
 * in float64 on the CPU side: L(x) = sum(fn(x) * R) for a fixed random R, compared along
 * random directions and, for small inputs, along each coordinate.
 * Returns a list of failures (empty when the check passes).
 */
export async function gradcheck(
  fn: (xs: Tensor[]) => Tensor,
  inputs: GradcheckInput[],
  opts: GradcheckOptions = {},
): Promise<string[]> {
  const { eps = 1e-2, rtol = 2e-2, atol = 2e-3, directions = 3, elementwiseUpTo = 24, seed = 1 } = opts;
  const rng = new Rng(seed);

  const evalLoss = async (datas: Float32Array[], R: Float64Array | null): Promise<{ out: Float32Array; shape: readonly number[]; loss: number }> => {
    const out = tidy(() => fn(datas.map((d, i) => tensor(d, inputs[i].shape))));
    const values = (await out.read()) as Float32Array;
    const shape = out.shape;
    out.dispose();
    let loss = 0;
    if (R) for (let i = 0; i < values.length; i++) loss += values[i] * R[i];
    return { out: values, shape, loss };
  };

  // Analytic: backward with grad R.
  const base = await evalLoss(inputs.map((x) => x.data), null);
  const R = new Float64Array(base.out.length);
  for (let i = 0; i < R.length; i++) R[i] = rng.next() * 2 - 1;
  const leaves = inputs.map((x) => tensor(x.data, x.shape).requireGrad());
  const out = fn(leaves);
  const seedGrad = tensor(Float32Array.from(R), out.shape);
  backward(out, { grad: seedGrad });
  seedGrad.dispose();
  out.dispose();
  const analytic: Float64Array[] = [];
  for (const leaf of leaves) {
    const g = leaf.grad ? Float64Array.from((await leaf.grad.read()) as Float32Array) : new Float64Array(leaf.size);
    analytic.push(g);
    leaf.grad?.dispose();
    leaf.dispose();
  }

  const failures: string[] = [];
  const check = async (which: number, dir: Float64Array, label: string) => {
    const plus = inputs.map((x) => x.data);
    const minus = inputs.map((x) => x.data);
    const p = Float32Array.from(inputs[which].data);
    const m = Float32Array.from(inputs[which].data);
    for (let i = 0; i < dir.length; i++) {
      p[i] += eps * dir[i];
      m[i] -= eps * dir[i];
    }
    plus[which] = p;
    minus[which] = m;
    const lp = (await evalLoss(plus, R)).loss;
    const lm = (await evalLoss(minus, R)).loss;
    // use the perturbation actually representable in f32
    let num = (lp - lm) / (2 * eps);
    let ana = 0;
    for (let i = 0; i < dir.length; i++) ana += analytic[which][i] * dir[i];
    if (!(Math.abs(num - ana) <= atol + rtol * Math.max(Math.abs(num), Math.abs(ana)))) {
      failures.push(`input ${which} ${label}: numeric ${num.toPrecision(6)} vs analytic ${ana.toPrecision(6)}`);
    }
  };

  for (let which = 0; which < inputs.length; which++) {
    const n = shapeSize(inputs[which].shape);
    for (let d = 0; d < directions; d++) {
      const dir = new Float64Array(n);
      let norm = 0;
      for (let i = 0; i < n; i++) norm += (dir[i] = rng.normal()) ** 2;
      norm = Math.sqrt(norm) || 1;
      for (let i = 0; i < n; i++) dir[i] /= norm;
      await check(which, dir, `direction ${d}`);
    }
    if (n <= elementwiseUpTo) {
      for (let i = 0; i < n; i++) {
        const dir = new Float64Array(n);
        dir[i] = 1;
        await check(which, dir, `element ${i}`);
      }
    }
  }
  return failures;
}
