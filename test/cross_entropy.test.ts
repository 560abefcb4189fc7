// Fused log-softmax + cross-entropy against a float64 reference, stable for large logits and
// K up to 8192, on [N, K] rows and NCHW score maps, with a finite-difference gradient check.
import t from 'tap';
import { gpu, assertClose, gradcheck } from './helpers.js';
import { Rng } from '../engine/random.js';
import { tensor } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { crossEntropy } from '../engine/cross_entropy.js';
import { refCrossEntropy } from './ref/cross_entropy.js';

await gpu(t);

t.test('matches float64 on awkward shapes, large logits and K up to 8192', async (t) => {
  const rng = new Rng(1);
  const cases: [number[], number][] = [
    [[5, 1], 1], [[7, 3], 1], [[33, 512], 4], [[3, 8192], 60], [[2, 5, 3, 4], 1], [[1, 7, 16, 16], 30],
  ];
  for (const [shape, spread] of cases) {
    const [b, k, ...sp] = shape;
    const s = sp.reduce((a, c) => a * c, 1);
    const logits = rng.uniformArray(b * k * s, -spread, spread);
    if (spread > 10) logits[0] = 1e4; // a huge logit must not overflow
    const targets = Uint32Array.from({ length: b * s }, () => rng.int(k));
    const x = tensor(logits, shape).requireGrad();
    const tg = tensor(targets, [b, ...sp], 'u32');
    const loss = crossEntropy(x, tg);
    const ref = refCrossEntropy(logits, targets, b, k, s);
    assertClose(t, await loss.read(), [ref.loss], { rtol: 1e-5, atol: 1e-5 }, `loss ${shape}`);
    backward(loss);
    assertClose(t, await x.grad!.read(), ref.grad, { rtol: 1e-4, atol: 1e-7 }, `grad ${shape}`);
  }
  // i32 targets work the same
  const l32 = crossEntropy(tensor([1, 2, 3, 0, 0, 5], [2, 3]), tensor([2, 0], [2], 'i32'));
  const ref = refCrossEntropy(new Float32Array([1, 2, 3, 0, 0, 5]), [2, 0], 2, 3, 1);
  assertClose(t, await l32.read(), [ref.loss], { rtol: 1e-6 }, 'i32 targets');
});

t.test('finite-difference gradient', async (t) => {
  const rng = new Rng(2);
  const targets = tensor([0, 3, 1, 2, 2, 0], [2, 3], 'u32');
  const failures = await gradcheck((xs) => crossEntropy(xs[0], targets), [{ data: rng.uniformArray(2 * 4 * 3, -2, 2), shape: [2, 4, 3] }]);
  t.same(failures, []);
});

t.test('clear errors; an out-of-range target gives NaN', async (t) => {
  t.throws(() => crossEntropy(tensor([1, 2, 3, 4], [2, 2]), tensor([0, 1, 0], [3], 'u32')), /targets \[3\] do not match logits \[2, 2\] \(expected \[2\]\)/);
  t.throws(() => crossEntropy(tensor([1, 2], [2]), tensor([0], [1], 'u32')), /need a class axis/);
  t.throws(() => crossEntropy(tensor([1, 2], [1, 2]), tensor([0], [1])), /targets must be integer class indices/);
  t.ok(Number.isNaN(await crossEntropy(tensor([1, 2], [1, 2]), tensor([5], [1], 'u32')).item()));
});
