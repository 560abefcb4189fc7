// The engine's kernel families in a browser page (WebGPU from navigator.gpu), against the same
// float64 references and tolerances as the Node tests, in smaller form: elementwise, reductions,
// matmul, conv2d / convTranspose2d with both gradients, the quantiser, cross-entropy, Adam,
// autograd, finite-difference gradient checks and a leak check. test/browser.test.ts bundles
// this file, runs `run()` in Chromium and turns each result into a tap assertion.
import * as E from '../../engine/index.js';
import {
  Adam,
  Rng,
  type Capabilities,
  type Tensor,
  backward,
  crossEntropy,
  init,
  matmul,
  memory,
  nearestCode,
  rt,
  segmentSum,
  sumRows,
  tensor,
  tidy,
  vectorQuantize,
  withFlags,
} from '../../engine/index.js';
import { compare, gradcheck, sumTolerance, type Tolerance } from '../check.js';
import { refBinary, refExpand, refOps, refUnary, size, values, type Shape } from '../ref/elementwise.js';
import { refArg, refSum } from '../ref/reduce.js';
import { checkNearest, refNearest, refVqLoss, sqdist } from '../ref/vq.js';
import { refMatmul } from '../ref/matmul.js';
import { refCrossEntropy } from '../ref/cross_entropy.js';
import { RefAdamParam } from '../ref/optim.js';
import { BINARY, PAIRS, SHAPES, UNARY, awayFrom, type BinaryName, type UnaryName } from '../cases/elementwise.js';
import { ARG_CASES, SUM_CASES, type Axes } from '../cases/reduce.js';
import { MATMUL_CASES, matmulTol } from '../cases/matmul.js';
import { AWKWARD, SEED, applyConv, makeData, reference, small, wShape, type ConvCase } from '../cases/conv.js';
import { NEAREST_D, NEAREST_K, SEGMENT_CASES, TIE_CASES, nearestVariants, vqData } from '../cases/vq.js';
import { trainSmallMlp } from '../cases/leak.js';

export interface Result {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SuiteReport {
  adapter: string;
  caps: Capabilities;
  /** Sections run, with their wall time in ms. */
  sections: { name: string; ms: number }[];
  results: Result[];
}

// ---------------------------------------------------------------------------------------------
// Recording results

let results: Result[] = [];

function record(name: string, ok: boolean, detail = ''): void {
  results.push({ name, ok, detail });
  // Failures show up in the Node log as they happen (the page's console is forwarded).
  if (!ok) console.error(`FAIL ${name}: ${detail}`);
}

function close(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance): void {
  const r = compare(got, want, tol);
  record(name, r.ok, r.worst);
}

/** Typed arrays as plain arrays, so JSON compares them by value. */
const plain = (v: unknown): unknown => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : Array.isArray(v) ? v.map(plain) : v);

function same(name: string, got: unknown, want: unknown): void {
  const a = JSON.stringify(plain(got));
  const b = JSON.stringify(plain(want));
  const cut = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}...` : s);
  record(name, a === b, a === b ? cut(a) : `got ${cut(a)}, expected ${cut(b)}`);
}

function throws(name: string, fn: () => unknown, re: RegExp): void {
  try {
    fn();
    record(name, false, `did not throw (expected ${re})`);
  } catch (e) {
    const msg = (e as Error).message;
    record(name, re.test(msg), msg);
  }
}

/** `cases` less those named; each name must be there, so a renamed case cannot slip back in. */
function omit<T extends { name: string }>(cases: T[], names: string[]): T[] {
  for (const n of names) if (!cases.some((c) => c.name === n)) throw new Error(`no case named '${n}'`);
  return cases.filter((c) => !names.includes(c.name));
}

async function noFailures(name: string, failures: Promise<string[]>): Promise<void> {
  const f = await failures;
  record(name, f.length === 0, f.join('; '));
}

const f64 = async (x: Tensor) => Float64Array.from(await x.read());
const u32 = async (x: Tensor) => Uint32Array.from((await x.read()) as Uint32Array);
const f32 = async (x: Tensor) => Float32Array.from((await x.read()) as Float32Array);

// ---------------------------------------------------------------------------------------------
// Elementwise (test/elementwise.test.ts), on the Node test's tables (test/cases/elementwise.ts),
// whole: seeds come from positions in them, so the data are the same.

async function elementwise(): Promise<void> {
  for (const [name, spec] of Object.entries(UNARY) as [UnaryName, (typeof UNARY)[UnaryName]][]) {
    for (const [si, shape] of SHAPES.entries()) {
      const data = values(size(shape), 10 * si + name.length, spec.low, spec.high);
      const x = tensor(data, shape);
      const y = E[name](x);
      close(`elementwise: ${name} [${shape}]`, await f64(y), refUnary(data, refOps[name]), spec);
      x.dispose();
      y.dispose();
    }
  }
  const xs = [1e-30, -1e-8, 1e-4, -0.01, 0.2499, 0.25, 0.2501, 0.7, 5, -9, 10, 20, 50, 90, -90, 1e4, -1e4];
  const x = tensor(xs);
  close('elementwise: tanh keeps relative accuracy near 0', await f64(E.tanh(x)), xs.map(Math.tanh), { rtol: 2e-6, atol: 0 });
  close('elementwise: sigmoid near 0 and saturated', await f64(E.sigmoid(x)), xs.map(refOps.sigmoid), { rtol: 4e-6, atol: 1e-37 });
  close('elementwise: exp over- and underflow', await f64(E.exp(x)), xs.map((v) => Math.fround(Math.exp(v))), { rtol: 4e-6, atol: 1e-37 });
  const edges = [0, 1.5e-38, 1e-30, 1e-6, 1, 3e38];
  const xe = tensor(edges);
  close('elementwise: log at the edges, log(0) = -Infinity', await f64(E.log(xe)), edges.map(Math.log), { rtol: 2e-6, atol: 0 });
  close('elementwise: sqrt at the edges', await f64(E.sqrt(xe)), edges.map(Math.sqrt), { rtol: 3e-7, atol: 0 });
  const d13 = values(13, 3);
  const x13 = tensor(d13, [13]);
  close('elementwise: scale', await f64(E.scale(x13, -2.5)), refUnary(d13, (v) => v * -2.5), { rtol: 6e-8, atol: 0 });
  close('elementwise: addScalar', await f64(E.addScalar(x13, 0.75)), refUnary(d13, (v) => v + 0.75), { rtol: 6e-8, atol: 6e-8 });
  for (const v of [x, xe, x13]) v.dispose();

  for (const [name, f] of Object.entries(BINARY) as [BinaryName, (a: number, b: number) => number][]) {
    for (const [pi, [as, bs]] of PAIRS.entries()) {
      const a = values(size(as), pi + 1, -2, 2);
      const b = values(size(bs), pi + 50, name === 'div' ? 0.5 : -2, 2);
      const ta = tensor(a, as);
      const tb = tensor(b, bs);
      const y = E[name](ta, tb);
      const want = refBinary(a, as, b, bs, f);
      same(`elementwise: ${name} [${as}] [${bs}] shape`, y.shape, want.shape);
      close(`elementwise: ${name} [${as}] [${bs}]`, await f64(y), want.data, { rtol: name === 'div' ? 3e-7 : 6e-8, atol: 0 });
      for (const v of [ta, tb, y]) v.dispose();
    }
    const data = values(11, 7, 0.5, 3);
    const t11 = tensor(data, [11]);
    const tol = { rtol: name === 'div' ? 3e-7 : 6e-8, atol: 0 };
    close(`elementwise: ${name}(x, 1.75)`, await f64(E[name](t11, 1.75)), refUnary(data, (v) => f(v, 1.75)), tol);
    close(`elementwise: ${name}(1.75, x)`, await f64(E[name](1.75, t11)), refUnary(data, (v) => f(1.75, v)), tol);
    t11.dispose();
  }
  throws('elementwise: shapes that do not broadcast', () => E.add(tensor([1, 2, 3, 4, 5, 6], [2, 3]), tensor([1, 2, 3, 4], [4])), /add: shapes \[2, 3\] and \[4\] do not broadcast/);

  // gradients
  const shape = [3, 5, 1];
  const n = size(shape);
  const unary: [string, (x: Tensor) => Tensor, Float32Array][] = [
    ['relu', E.relu, awayFrom(n, 1, -2, 2, [0])],
    ['exp', E.exp, values(n, 2, -2, 2)],
    ['log', E.log, values(n, 3, 0.3, 3)],
    ['sqrt', E.sqrt, values(n, 5, 0.3, 3)],
    ['tanh', E.tanh, values(n, 6, -2, 2)],
    ['sigmoid', E.sigmoid, values(n, 7, -4, 4)],
    ['abs', E.abs, awayFrom(n, 8, -2, 2, [0])],
    ['square', E.square, values(n, 9, -2, 2)],
  ];
  for (const [name, f, data] of unary) await noFailures(`elementwise: gradcheck ${name}`, gradcheck(([v]) => f(v), [{ data, shape }]));
  for (const name of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const) {
    for (const [si, [as, bs]] of ([[[2, 1, 3], [4, 1]], [[], [2, 3]]] as [Shape, Shape][]).entries()) {
      const a = values(size(as), si + 1, -2, 2);
      let b = name === 'div' ? awayFrom(size(bs), si + 9, -2, 2, [0], 0.4) : values(size(bs), si + 9, -2, 2);
      if (name === 'maximum' || name === 'minimum') {
        b = b.map((v) => Math.round(v * 4) / 4 + 0.125);
        for (let i = 0; i < a.length; i++) a[i] = Math.round(a[i] * 4) / 4;
      }
      await noFailures(`elementwise: gradcheck ${name} [${as}] [${bs}]`, gradcheck(([p, q]) => E[name](p, q), [{ data: a, shape: [...as] }, { data: b, shape: [...bs] }]));
    }
  }
  const a = tensor([1, 2, 3, 0]).requireGrad();
  const b = tensor([1, 5, 3, -1]).requireGrad();
  backward(E.maximum(a, b), { grad: tensor([1, 1, 1, 1]) });
  same('elementwise: maximum gradient, ties go to a', await a.grad!.read(), [1, 0, 1, 1]);
  same('elementwise: maximum gradient, b only where strictly larger', await b.grad!.read(), [0, 1, 0, 0]);
  const r = tensor([-1, 0, 2]).requireGrad();
  backward(E.relu(r), { grad: tensor([5, 5, 5]) });
  same('elementwise: relu gradient is 0 at 0', await r.grad!.read(), [0, 0, 5]);
}

// ---------------------------------------------------------------------------------------------
// Reductions (test/reduce.test.ts), on the Node test's lists (test/cases/reduce.ts), whole: each
// case's seed is its position, so the data are the same.

async function reductions(): Promise<void> {
  let seed = 1;
  for (const [shape, axesList] of SUM_CASES) {
    const data = values(size(shape), seed++, -1, 1);
    const x = tensor(data, shape);
    for (const axes of axesList) {
      for (const keepDims of [false, true]) {
        for (const op of ['sum', 'mean'] as const) {
          const y = E[op](x, axes, keepDims);
          const want = refSum(data, shape, axes, op === 'mean');
          const label = `reduce: ${op} [${shape}] axes ${JSON.stringify(axes)} keepDims ${keepDims}`;
          same(`${label}: shape`, y.shape, keepDims ? want.kept : want.dropped);
          close(label, await f64(y), want.data, sumTolerance(size(shape) / Math.max(1, size(want.dropped)), op === 'mean'));
          y.dispose();
        }
      }
    }
    x.dispose();
  }
  // 1M positive values: a tree sum within 1e-5 of float64
  const n = 1 << 20;
  const big = values(n, 77, 0, 1);
  let ref = 0;
  for (const v of big) ref += v;
  const xb = tensor(big, [n]);
  const s1 = await E.sum(xb).item();
  record('reduce: sum of 1M values within 1e-5 of float64', Math.abs(s1 - ref) <= 1e-5 * ref, `${s1} vs ${ref}`);
  record('reduce: the same sum twice is bit-identical', (await E.sum(xb).item()) === s1, `${s1}`);
  xb.dispose();

  seed = 100;
  for (const [shape, axes] of ARG_CASES) {
    const data = values(size(shape), seed++, -4, 4).map((v) => Math.round(v * 2) / 2);
    const x = tensor(data, shape);
    for (const axis of axes) {
      const label = `[${shape}] axis ${axis}`;
      const mx = refArg(data, shape, axis, 'max');
      const mn = refArg(data, shape, axis, 'min');
      close(`reduce: max ${label}`, await f64(E.max(x, axis)), mx.values, { rtol: 0, atol: 0 });
      same(`reduce: argmax ${label} (ties to the lowest index)`, await E.argmax(x, axis).read(), mx.indices);
      same(`reduce: argmin ${label}`, await E.argmin(x, axis).read(), mn.indices);
    }
    x.dispose();
  }
  const shape = [2, 3, 4];
  const data = values(size(shape), 9);
  for (const axes of [undefined, 0, [1, 2], -1] as Axes[]) {
    for (const op of ['sum', 'mean'] as const) {
      await noFailures(`reduce: gradcheck ${op} axes ${JSON.stringify(axes)}`, gradcheck(([x]) => E[op](x, axes), [{ data, shape }], { elementwiseUpTo: 0 }));
    }
  }
  const distinct = Float32Array.from(values(24, 4).map((_, i) => ((i * 7) % 24) / 10 - 1.2));
  for (const axis of [0, 2, undefined]) {
    await noFailures(`reduce: gradcheck max axis ${axis}`, gradcheck(([x]) => E.max(x, axis), [{ data: distinct, shape: [3, 4, 2] }]));
  }
  await noFailures('reduce: gradcheck expand', gradcheck(([x]) => E.expand(x, [2, 3, 4]), [{ data: values(3, 1), shape: [3, 1] }]));
  const from = [2, 1, 3];
  const to = [2, 5, 3];
  const d = values(size(from), 30);
  close('reduce: expand [2, 1, 3] -> [2, 5, 3]', await f64(E.expand(tensor(d, from), to)), refExpand(d, from, to), { rtol: 0, atol: 0 });
  const x = tensor([1, 3, 3, 2, 0, 0, -1, 0], [2, 4]).requireGrad();
  backward(E.max(x, 1), { grad: tensor([10, 20]) });
  same('reduce: max sends the gradient to the first of tied maxima', await x.grad!.read(), [0, 10, 0, 0, 20, 0, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Matmul (test/matmul.test.ts)

/** The Node test's cases less a few, in its order (each draws its data from one Rng in turn). */
const MATMUL_SKIPPED = [
  'many batches [40,3,5] x [40,5,2]',
  'leading-1 batch [1,4,5] x [3,5,7]',
  'transB [7,13] x [5,13]^T',
  'bias+relu 33x20x64 batched',
  'bias only, transB [11,6] x [9,6]^T',
];
const MATMUL_BROWSER = omit(MATMUL_CASES, MATMUL_SKIPPED);

async function matmuls(): Promise<void> {
  const rng = new Rng(20240611);
  const rand = (n: number) => rng.uniformArray(n, -1, 1);
  for (const schedule of ['reg', 'smem'] as const) {
    for (const c of MATMUL_BROWSER) {
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
      same(`matmul ${schedule}: ${c.name}: shape`, out.shape, ref.shape);
      close(`matmul ${schedule}: ${c.name}`, await out.read(), ref.data, matmulTol(ref.K));
      for (const x of [a, b, bias, out]) x?.dispose();
    }
  }
  const input = (shape: number[]) => ({ data: rand(size(shape)), shape });
  for (const schedule of ['reg', 'smem'] as const) {
    await noFailures(`matmul ${schedule}: gradcheck [3,4] @ [4,5]`, gradcheck(([a, b]) => matmul(a, b, { schedule }), [input([3, 4]), input([4, 5])]));
  }
  for (const [transA, transB] of [[true, false], [false, true], [true, true]]) {
    const a = input(transA ? [4, 3] : [3, 4]);
    const b = input(transB ? [5, 4] : [4, 5]);
    await noFailures(`matmul: gradcheck transA ${transA} transB ${transB}`, gradcheck(([x, y]) => matmul(x, y, { transA, transB }), [a, b]));
  }
  await noFailures('matmul: gradcheck broadcast [2,3,4] @ [4,5]', gradcheck(([a, b]) => matmul(a, b), [input([2, 3, 4]), input([4, 5])]));
  const rows = 70001;
  const d = rand(rows * 3);
  const x = tensor(d, [rows, 3]);
  const want = new Float64Array(3);
  for (let i = 0; i < rows; i++) for (let j = 0; j < 3; j++) want[j] += d[i * 3 + j];
  close('matmul: sumRows over 70001 rows', await sumRows(x, rows, 3).read(), want, { rtol: 1e-5, atol: 1e-3 });
  x.dispose();
}

// ---------------------------------------------------------------------------------------------
// Convolutions (test/conv.test.ts)

/**
 * Six of the seed model's layers (test/cases/conv.ts) with their spatial size cut down as the
 * Node test's gradient checks cut it (channels, kernel, stride and padding kept); they keep
 * their ReLUs, except enc conv2.
 */
const SEED_SMALL: ConvCase[] = omit(SEED, ['enc conv3 128->128 k3 p1', 'pre-vq 1x1 128->64', 'dec conv1 64->128 k3 p1']).map((c) => {
  const { IH, IW } = small(c);
  const relu = c.relu && !c.name.startsWith('enc conv2');
  return { ...c, IH, IW, relu, name: `${relu ? c.name : c.name.replace(' + relu', '')}, ${IH}x${IW}` };
});

/** f32 sums of products: an absolute tolerance scaled to the largest reference value. */
function convClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]));
  close(name, got, want, { rtol: 1e-4, atol: 2e-5 * Math.max(m, 1e-3) });
}

async function convCase(c: ConvCase, seed: number, label: string): Promise<void> {
  const d = makeData(c, seed);
  const ref = reference(c, d);
  const x = tensor(d.x, [c.B, c.CI, c.IH, c.IW]).requireGrad();
  const w = tensor(d.w, wShape(c)).requireGrad();
  const b = d.b ? tensor(d.b, [c.CO]).requireGrad() : null;
  const y = applyConv(c, x, w, b);
  same(`${label}: output shape`, y.shape, d.yShape);
  convClose(`${label}: forward`, await y.read(), ref.y);
  const seedGrad = tensor(d.dy, d.yShape);
  backward(y, { grad: seedGrad });
  convClose(`${label}: input gradient`, await x.grad!.read(), ref.dx);
  convClose(`${label}: weight gradient`, await w.grad!.read(), ref.dw);
  if (b) convClose(`${label}: bias gradient`, await b.grad!.read(), ref.db);
  for (const v of [x, w, b, y, seedGrad, x.grad, w.grad, b?.grad]) v?.dispose();
}

async function convGradcheck(c: ConvCase, seed: number, label: string): Promise<void> {
  const d = makeData(c, seed);
  const inputs = [{ data: d.x, shape: [c.B, c.CI, c.IH, c.IW] }, { data: d.w, shape: wShape(c) }, ...(d.b ? [{ data: d.b, shape: [c.CO] }] : [])];
  // linear in each input: a large step keeps perturbations far above f32 resolution
  await noFailures(label, gradcheck(([x, w, b]) => applyConv(c, x, w, b ?? null), inputs, { eps: c.relu ? 1e-2 : 0.5, rtol: 1e-2, atol: 1e-3, seed }));
}

async function convolutions(): Promise<void> {
  // Every schedule this device runs, as the Node test does: reg needs subgroups of at least 8.
  const caps = rt().caps;
  const schedules: ('reg' | 'smem')[] = caps.subgroups && caps.subgroupMinSize >= 8 ? ['reg', 'smem'] : ['smem'];
  record(`conv: schedules run here: ${schedules.join(', ')}`, true, `subgroups ${caps.subgroups ? `${caps.subgroupMinSize}-${caps.subgroupMaxSize}` : 'none'}`);
  for (const s of schedules) {
    await withFlags({ convSchedule: s }, async () => {
      for (const [i, c] of SEED_SMALL.entries()) await convCase(c, 100 + 10 * i, `conv [${s}]: seed layer ${c.name}`);
      // The Node test's awkward shapes, whole: each case's seeds come from its position.
      for (const [i, c] of AWKWARD.entries()) await convCase(c, 300 + 10 * i, `conv [${s}]: ${c.name}`);
      for (const i of [0, 2, 3, 8, 9, 12]) await convGradcheck(AWKWARD[i], 600 + i, `conv [${s}]: gradcheck ${AWKWARD[i].name}`);
      const layer = { ...SEED_SMALL[4], IH: 4, IW: 4, relu: false };
      await convGradcheck(layer, 500, `conv [${s}]: gradcheck dec convT1 128->64 at 4x4`);
    });
  }
  throws(
    'conv: channel mismatch names both shapes',
    () => E.conv2d(tensor(new Float32Array(2 * 3 * 8 * 8), [2, 3, 8, 8]), tensor(new Float32Array(4 * 5 * 9), [4, 5, 3, 3])),
    /conv2d: input \[2, 3, 8, 8\] has 3 channels but weight \[4, 5, 3, 3\] expects 5/,
  );
}

// ---------------------------------------------------------------------------------------------
// The vector quantiser (test/vq.test.ts), on its cases (test/cases/vq.ts) with fewer rows, exact
// ties without the largest codebook (K = 4099) and fewer segment sums

async function quantiser(): Promise<void> {
  const variants = nearestVariants(rt().caps);
  const rng = new Rng(11);
  for (const k of NEAREST_K) {
    for (const d of NEAREST_D) {
      const n = k === 4099 ? 37 : d === 1 ? 1031 : 131;
      const zd = rng.uniformArray(n * d, -1, 1);
      const ed = rng.uniformArray(k * d, -1, 1);
      const z = tensor(zd, [n, d]);
      const e = tensor(ed, [k, d]);
      for (const { name, ...opts } of variants) {
        const { indices, distances } = nearestCode(z, e, { ...opts, distances: true });
        const got = await u32(indices);
        const { failures, differ } = checkNearest(zd, ed, n, k, d, got);
        record(`vq: nearestCode K=${k} D=${d} N=${n} ${name}`, failures.length === 0, failures.length ? failures.join('; ') : `${differ} near-ties resolved otherwise`);
        const expect = Float64Array.from(got, (g, i) => sqdist(zd, ed, d, i, g));
        close(`vq: distances K=${k} D=${d} ${name}`, await f32(distances!), expect, { rtol: 1e-4, atol: 2e-5 * d });
        indices.dispose();
        distances!.dispose();
      }
      z.dispose();
      e.dispose();
    }
  }
  // exact ties: duplicated codebook rows go to the lowest index
  for (const { k, d, pairs } of TIE_CASES.filter((c) => c.k !== 4099)) {
    const ed = rng.uniformArray(k * d, -1, 1);
    const dupOf = new Map<number, number>();
    for (const [src, dst] of pairs) {
      ed.copyWithin(dst * d, src * d, src * d + d);
      dupOf.set(dst, src);
    }
    const targets = [...dupOf.keys()];
    const n = 97;
    const zd = rng.uniformArray(n * d, -1, 1);
    for (let i = 0; i < n; i += 2) {
      const j = targets[(i / 2) % targets.length];
      zd.set(ed.subarray(j * d, j * d + d), i * d);
    }
    const z = tensor(zd, [n, d]);
    const e = tensor(ed, [k, d]);
    for (const { name, ...opts } of variants) {
      const { indices } = nearestCode(z, e, opts);
      const got = await u32(indices);
      indices.dispose();
      let bad = 0;
      for (let i = 0; i < n; i += 2) {
        let lowest = dupOf.get(targets[(i / 2) % targets.length])!;
        while (dupOf.has(lowest)) lowest = dupOf.get(lowest)!;
        if (got[i] !== lowest) bad++;
      }
      record(`vq: exact ties go to the lowest index K=${k} D=${d} ${name}`, bad === 0, `${bad} rows chose another duplicate`);
    }
    z.dispose();
    e.dispose();
  }
  // segment sums
  for (const [n, k, collapsed] of SEGMENT_CASES.filter(([n]) => n !== 1 && n !== 3000)) {
    const idx = Uint32Array.from({ length: n }, () => (collapsed ? 300 : Math.min(k - 1, Math.floor(rng.next() ** 2 * k))));
    const it = tensor(idx, [n], 'u32');
    for (const d of [3, 4]) {
      const xd = rng.uniformArray(n * d, -1, 1);
      const x = tensor(xd, [n, d]);
      const s = segmentSum(x, it, k);
      const expect = new Float64Array(k * d);
      for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) expect[idx[i] * d + c] += xd[i * d + c];
      close(`vq: segmentSum N=${n} K=${k} D=${d}`, await f32(s), expect, { rtol: 1e-5, atol: 1e-5 });
      x.dispose();
      s.dispose();
    }
    it.dispose();
  }
  // quantisation, losses and gradients (SPEC section 2)
  for (const schedule of ['reg', 'smem'] as const) {
    const [n, k, d, beta] = [301, 19, 6, 1.25];
    const { ed, zd } = vqData(new Rng(21), n, k, d);
    const z = tensor(zd, [n, d]);
    const e = tensor(ed, [k, d]);
    const q = vectorQuantize(z, e, { beta, schedule });
    const idx = await u32(q.indices);
    same(`vq: vectorQuantize ${schedule}: indices`, idx, refNearest(zd, ed, n, k, d).idx);
    const ref = refVqLoss(zd, ed, idx, n, k, d, beta);
    same(`vq: vectorQuantize ${schedule}: z_q rows are codebook rows`, await f32(q.zq), Float32Array.from(ref.zq));
    close(`vq: vectorQuantize ${schedule}: codebook loss`, [await q.codebookLoss.item()], [ref.codebookLoss], { rtol: 1e-5 });
    close(`vq: vectorQuantize ${schedule}: commitment loss`, [await q.commitmentLoss.item()], [ref.commitmentLoss], { rtol: 1e-5 });
    for (const x of [z, e, ...Object.values(q)]) x.dispose();
  }
  for (const d of [5, 8]) {
    const [n, k, beta] = [257, 13, 1.25];
    const { ed, zd } = vqData(new Rng(8), n, k, d);
    const R = new Rng(9).uniformArray(n * d, -1, 1);
    const z = tensor(zd, [n, d]).requireGrad();
    const e = tensor(ed, [k, d]).requireGrad();
    const q = vectorQuantize(z, e, { beta });
    // one backward over the VQ-VAE graph: z gets the straight-through copy plus the commitment
    // gradient, E only the codebook gradient
    const seed = tensor(R, [n, d]);
    backward(q.zq, { grad: seed, retainGraph: true });
    backward(q.loss);
    const ref = refVqLoss(zd, ed, await u32(q.indices), n, k, d, beta);
    close(`vq: D=${d} gradient of z (straight-through + commitment)`, await f32(z.grad!), Float64Array.from(R, (v, i) => v + ref.dzCommit[i]), { rtol: 1e-4, atol: 1e-7 });
    close(`vq: D=${d} gradient of the codebook (codebook loss only)`, await f32(e.grad!), ref.dCodebook, { rtol: 1e-4, atol: 1e-7 });
    for (const x of [z, e, z.grad, e.grad, seed, ...Object.values(q)]) x?.dispose();
  }
  const [n, k, d, beta] = [23, 4, 3, 0.75];
  const { ed, zd } = vqData(new Rng(4), n, k, d);
  const opts = { eps: 1e-3, rtol: 2e-2, atol: 1e-4 };
  await noFailures('vq: gradcheck codebook loss in E', gradcheck(([e]) => vectorQuantize(tensor(zd, [n, d]), e, { beta }).codebookLoss, [{ data: ed, shape: [k, d] }], opts));
  await noFailures('vq: gradcheck commitment loss in z', gradcheck(([z]) => vectorQuantize(z, tensor(ed, [k, d]), { beta }).commitmentLoss, [{ data: zd, shape: [n, d] }], opts));
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy (test/cross_entropy.test.ts)

async function crossEntropies(): Promise<void> {
  const rng = new Rng(1);
  const cases: [number[], number][] = [[[5, 1], 1], [[7, 3], 1], [[33, 512], 4], [[3, 8192], 60], [[2, 5, 3, 4], 1], [[1, 7, 16, 16], 30]];
  for (const [shape, spread] of cases) {
    const [b, k, ...sp] = shape;
    const s = size(sp);
    const logits = rng.uniformArray(b * k * s, -spread, spread);
    if (spread > 10) logits[0] = 1e4; // a huge logit must not overflow
    const targets = Uint32Array.from({ length: b * s }, () => rng.int(k));
    const x = tensor(logits, shape).requireGrad();
    const loss = crossEntropy(x, tensor(targets, [b, ...sp], 'u32'));
    const ref = refCrossEntropy(logits, targets, b, k, s);
    close(`cross-entropy: loss [${shape}]`, await loss.read(), [ref.loss], { rtol: 1e-5, atol: 1e-5 });
    backward(loss);
    close(`cross-entropy: gradient [${shape}]`, await x.grad!.read(), ref.grad, { rtol: 1e-4, atol: 1e-7 });
  }
  const targets = tensor([0, 3, 1, 2, 2, 0], [2, 3], 'u32');
  await noFailures('cross-entropy: gradcheck', gradcheck((xs) => crossEntropy(xs[0], targets), [{ data: rng.uniformArray(24, -2, 2), shape: [2, 4, 3] }]));
}

// ---------------------------------------------------------------------------------------------
// Adam (test/optim.test.ts; the reference is PyTorch's update rule)

async function adam(): Promise<void> {
  const rng = new Rng(99);
  /** rtol 1e-6 per element, and as atol against the tensor's largest magnitude. */
  const closeTo = (name: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i]));
    close(name, got, want, { rtol: 1e-6, atol: 1e-6 * max });
  };
  const configs = [
    { opts: {}, ref: { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0 } },
    { opts: { lr: 0.01, betas: [0.8, 0.99] as [number, number], eps: 1e-6, weightDecay: 0.1 }, ref: { lr: 0.01, b1: 0.8, b2: 0.99, eps: 1e-6, wd: 0.1 }, lrAt3: 0.003 },
  ];
  const shapes = [[7], [3, 5], [1], [100003]];
  for (const { opts, ref, lrAt3 } of configs) {
    const init0 = shapes.map((s) => rng.uniformArray(size(s), -2, 2));
    const params = shapes.map((s, i) => tensor(init0[i], s).requireGrad());
    const refs = init0.map((d) => new RefAdamParam(Float64Array.from(d)));
    const opt = new Adam(params, opts);
    for (let step = 1; step <= 5; step++) {
      if (step === 3 && lrAt3 !== undefined) opt.lr = ref.lr = lrAt3;
      params.forEach((p, i) => {
        p.grad?.dispose();
        p.grad = null;
        if (i === 2 && step === 2) return; // no gradient: skipped, its step count does not advance
        const g = rng.uniformArray(p.size, -1, 1);
        for (let j = 0; j < g.length; j++) g[j] *= 10 ** -rng.int(5);
        p.grad = tensor(g, p.shape);
        refs[i].update(g, ref);
      });
      opt.step();
    }
    const state = await opt.state();
    for (let i = 0; i < params.length; i++) {
      const label = `adam ${JSON.stringify(opts)} [${shapes[i]}]`;
      closeTo(`${label}: value`, await params[i].read(), refs[i].p);
      closeTo(`${label}: m`, state.params[i]!.m, refs[i].m);
      closeTo(`${label}: v`, state.params[i]!.v, refs[i].v);
      record(`${label}: step count`, state.params[i]!.step === refs[i].step, `${state.params[i]!.step} vs ${refs[i].step}`);
    }
    opt.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Autograd, a finite-difference check of a small model, and leaks (test/autograd.test.ts,
// test/leak.test.ts)

async function autograd(): Promise<void> {
  const xs = [0.5, -1, 2];
  const x = tensor(xs).requireGrad();
  backward(E.sum(E.add(E.mul(x, x), E.exp(x))));
  close('autograd: diamond, two paths from one leaf add up', await x.grad!.read(), xs.map((v) => 2 * v + Math.exp(v)), { rtol: 1e-5, atol: 1e-5 });
  const y = tensor([1, -2]).requireGrad();
  backward(E.sum(E.mul(y, 3)));
  backward(E.sum(E.mul(y, 4)));
  same('autograd: gradients accumulate over backward calls', await y.grad!.read(), [7, 7]);
  const leaf = E.full([4096], 1).requireGrad();
  const before = memory().liveBytes;
  tidy(() => {
    E.sum(E.exp(E.relu(leaf)));
  });
  record('autograd: tidy frees saved activations of graphs nothing kept', memory().liveBytes === before, `${before} -> ${memory().liveBytes} live bytes`);

  // a small model end to end (smooth, so finite differences hold): matmul + bias, tanh, matmul, cross-entropy
  const rng = new Rng(31);
  const targets = tensor([2, 0, 1], [3], 'u32');
  await noFailures(
    'gradcheck: tanh MLP with bias and cross-entropy (x, w1, b1, w2)',
    gradcheck(
      ([xi, w1, b1, w2]) => crossEntropy(matmul(E.tanh(matmul(xi, w1, { bias: b1 })), w2), targets),
      [
        { data: rng.uniformArray(3 * 5, -1, 1), shape: [3, 5] },
        { data: rng.uniformArray(5 * 6, -0.5, 0.5), shape: [5, 6] },
        { data: rng.uniformArray(6, -0.5, 0.5), shape: [6] },
        { data: rng.uniformArray(6 * 4, -0.5, 0.5), shape: [6, 4] },
      ],
      { elementwiseUpTo: 6 },
    ),
  );
}

async function leaks(): Promise<void> {
  const steps = 60; // 10 to warm the pool up, then 50 that must leave live memory flat
  const { first, last, liveAfterWarmup, live, dispose } = await trainSmallMlp(steps);
  record(`leak: live bytes flat over ${steps - 10} training steps`, live === liveAfterWarmup, `${liveAfterWarmup} -> ${live} bytes`);
  record('leak: the loss falls', last < first, `${first} -> ${last}`);
  dispose();
}

// ---------------------------------------------------------------------------------------------

const SECTIONS: [string, () => Promise<void>][] = [
  ['elementwise', elementwise],
  ['reductions', reductions],
  ['matmul', matmuls],
  ['conv', convolutions],
  ['quantiser', quantiser],
  ['cross-entropy', crossEntropies],
  ['adam', adam],
  ['autograd', autograd],
  ['leak', leaks],
];

/**
 * Runs every section on the page's WebGPU device. An exception ends only its section, as one
 * failed result that carries the error (a GPU error names its kernel). `only` picks sections
 * by name.
 */
export async function run(only?: string[]): Promise<SuiteReport> {
  results = [];
  const r = await init();
  const sections: SuiteReport['sections'] = [];
  for (const [name, fn] of SECTIONS) {
    if (only && !only.includes(name)) continue;
    const t0 = performance.now();
    try {
      await fn();
      await r.sync();
    } catch (e) {
      record(`${name}: the section ran to the end`, false, `${(e as Error).name}: ${(e as Error).message}\n${(e as Error).stack ?? ''}`);
    }
    const ms = Math.round(performance.now() - t0);
    sections.push({ name, ms });
    console.log(`section ${name}: ${ms} ms`);
  }
  return { adapter: r.caps.description, caps: r.caps, sections, results };
}
