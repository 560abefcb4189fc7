// Graph behaviour of the autograd engine: diamonds, reuse, accumulation, noGrad, detach,
// deep graphs, and freeing saved activations.
import t from 'tap';
import { gpu } from './helpers.js';
import { backward, noGrad } from '../engine/autograd.js';
import { full, memory, tensor, tidy } from '../engine/tensor.js';
import { add, exp, mul, relu } from '../engine/elementwise.js';
import { sum } from '../engine/reduce.js';

await gpu(t);

const values = async (x: { read(): Promise<Float32Array | Uint16Array | Int32Array | Uint32Array> }) => Array.from(await x.read());
const close = (a: number[], b: number[], tol = 1e-5) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol * (1 + Math.abs(b[i])));

t.test('diamond: two paths from one leaf add up', async (t) => {
  const xs = [0.5, -1, 2];
  const x = tensor(xs).requireGrad();
  const loss = sum(add(mul(x, x), exp(x)));
  backward(loss);
  const want = xs.map((v) => 2 * v + Math.exp(v));
  t.ok(close(await values(x.grad!), want), `grad ${await values(x.grad!)} vs ${want}`);
});

t.test('a tensor used twice by one op', async (t) => {
  const x = tensor([1, 2, 3]).requireGrad();
  backward(sum(add(x, x)));
  t.same(await values(x.grad!), [2, 2, 2]);
});

t.test('gradients accumulate over backward calls', async (t) => {
  const x = tensor([1, -2]).requireGrad();
  backward(sum(mul(x, 3)));
  backward(sum(mul(x, 4)));
  t.same(await values(x.grad!), [7, 7]);
});

t.test('noGrad records nothing; detach cuts the graph', async (t) => {
  const x = tensor([1, 2, 3]).requireGrad();
  const y = noGrad(() => mul(x, x));
  t.equal(y.requiresGrad, false);
  t.equal(y.node, null);
  const z = sum(mul(x.detach(), x)); // d/dx = x (only the attached path)
  backward(z);
  t.same(await values(x.grad!), [1, 2, 3]);
  t.equal(x.detach().requiresGrad, false);
});

t.test('deep graphs need no recursion', async (t) => {
  const x = tensor([0.25]).requireGrad();
  let y = x;
  for (let i = 0; i < 3000; i++) y = add(y, 1);
  backward(sum(y));
  t.same(await values(x.grad!), [1]);
  t.same(await values(y), [3000.25]);
});

t.test('backward frees saved activations as soon as they are used', async (t) => {
  const x = full([1 << 16], 0.5).requireGrad();
  const h = exp(x); // saves its output
  const loss = sum(relu(h)); // relu saves its input (h)
  h.dispose(); // the user lets go of h: the graph still holds it
  const before = memory().liveBytes;
  backward(loss);
  x.grad!.dispose();
  const after = memory().liveBytes;
  t.ok(before - after >= (1 << 16) * 4, `saved activations released: ${before} -> ${after} bytes`);
});

t.test('tidy frees saved activations of graphs nothing kept', async (t) => {
  const x = full([4096], 1).requireGrad();
  const before = memory().liveBytes;
  tidy(() => {
    sum(exp(relu(x)));
  });
  t.equal(memory().liveBytes, before);
  // a kept result keeps its graph alive for a later backward
  const kept = tidy(() => sum(exp(x)));
  backward(kept);
  t.ok(close(await values(x.grad!), new Array(4096).fill(Math.E)), 'backward after tidy');
});

t.test('clear errors', async (t) => {
  const x = tensor([1, 2]).requireGrad();
  t.throws(() => backward(mul(x, 2)), /is not a scalar; pass opts.grad/);
  t.throws(() => backward(tensor([1])), /does not require grad/);
  t.throws(() => tensor([1], [1], 'i32').requireGrad(), /Only f32 and f16 tensors can require gradients/);
});
