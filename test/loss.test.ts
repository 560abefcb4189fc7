// mseLoss against a float64 CPU reference: values on awkward sizes (chunk boundaries of the
// partial-sum kernel, a training-batch-sized input), determinism, gradients and errors.
import t from 'tap';
import { assertClose, gpu, gradcheck, randomArray } from './helpers.js';
import { Rng } from '../engine/random.js';
import { backward } from '../engine/autograd.js';
import { tensor } from '../engine/tensor.js';
import { MSE_CHUNK, mseLoss } from '../engine/loss.js';

await gpu(t);
const rng = new Rng(7);
const size = (s: number[]) => s.reduce((a, d) => a * d, 1);

function refMse(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += (p[i] - q[i]) ** 2;
  return s / p.length;
}

t.test('mseLoss matches the float64 reference', async (t) => {
  const shapes = [[1], [7], [3, 5], [MSE_CHUNK], [MSE_CHUNK + 1], [2, 3, 1, 5, 7], [3 * MSE_CHUNK - 5], [257, 1031]];
  for (const shape of shapes) {
    const pd = randomArray(rng, size(shape));
    const td = randomArray(rng, size(shape), -2, 2);
    const loss = mseLoss(tensor(pd, shape), tensor(td, shape));
    t.same(loss.shape, [], 'a 0-d result');
    assertClose(t, [await loss.item()], [refMse(pd, td)], { rtol: 2e-6, atol: 0 }, `mse of [${shape}]`);
  }
  const same = randomArray(rng, 10);
  t.equal(await mseLoss(tensor(same), tensor(same)).item(), 0, 'zero for equal inputs');
});

t.test('a training-batch-sized input (256x3x64x64) is exact to f32 accuracy and deterministic', async (t) => {
  const shape = [256, 3, 64, 64];
  const n = size(shape);
  const pd = randomArray(rng, n, -0.5, 0.5);
  const td = randomArray(rng, n, -0.5, 0.5);
  const p = tensor(pd, shape);
  const q = tensor(td, shape);
  const t0 = performance.now();
  const a = await mseLoss(p, q).item();
  t.comment(`mse of ${n} elements: ${(performance.now() - t0).toFixed(0)} ms incl. read-back`);
  const b = await mseLoss(p, q).item();
  assertClose(t, [a], [refMse(pd, td)], { rtol: 1e-5, atol: 0 }, 'mse of 3.1M elements');
  t.equal(a, b, 'bit-identical on a rerun');
});

t.test('gradients: 2 (pred - target) / n times the upstream gradient, negated for target', async (t) => {
  const shape = [3, 1, 7];
  const n = size(shape);
  const pd = randomArray(rng, n);
  const td = randomArray(rng, n);
  const gUp = 0.7;
  const ref = Array.from(pd, (v, i) => (2 * (v - td[i]) * gUp) / n);
  const neg = ref.map((v) => -v);
  for (const [wantP, wantT] of [[true, true], [true, false], [false, true]]) {
    const p = tensor(pd, shape).requireGrad(wantP);
    const q = tensor(td, shape).requireGrad(wantT);
    backward(mseLoss(p, q), { grad: tensor([gUp], []) });
    if (wantP) assertClose(t, await p.grad!.read(), ref, { rtol: 1e-6, atol: 1e-8 }, `d pred (pred ${wantP}, target ${wantT})`);
    else t.equal(p.grad, null);
    if (wantT) assertClose(t, await q.grad!.read(), neg, { rtol: 1e-6, atol: 1e-8 }, `d target (pred ${wantP}, target ${wantT})`);
    else t.equal(q.grad, null);
  }
  // default seed: a scalar root gets gradient 1
  const p = tensor(pd, shape).requireGrad();
  backward(mseLoss(p, tensor(td, shape)));
  assertClose(t, await p.grad!.read(), ref.map((v) => v / gUp), { rtol: 1e-6, atol: 1e-8 }, 'backward() from the loss');
});

t.test('gradcheck', async (t) => {
  const inp = (shape: number[]) => ({ data: randomArray(rng, size(shape)), shape });
  t.same(await gradcheck(([a, b]) => mseLoss(a, b), [inp([2, 3, 4]), inp([2, 3, 4])], { eps: 1e-2 }), [], 'mse, both inputs');
  t.same(await gradcheck(([a, b]) => mseLoss(a, b), [inp([5]), inp([5])]), [], 'mse, elementwise');
});

t.test('errors', async (t) => {
  t.throws(() => mseLoss(tensor([1, 2, 3, 4], [2, 2]), tensor([1, 2, 3, 4], [4])), /mseLoss: shapes \[2, 2\] and \[4\] differ/);
  t.throws(() => mseLoss(tensor([1, 2], [2], 'i32'), tensor([1, 2])), /mseLoss: expected f32, got Tensor #\d+ i32\[2\]/);
  t.throws(() => mseLoss(tensor([], [0]), tensor([], [0])), /mean of 0 elements/);
});
