// Gated activation tanh(a) * sigmoid(b) against float64, with a finite-difference gradient check.
import t from 'tap';
import { gpu, assertClose, gradcheck } from './helpers.js';
import { Rng } from '../engine/random.js';
import { tensor } from '../engine/tensor.js';
import { gatedActivation } from '../engine/gate.js';

await gpu(t);

t.test('forward matches float64', async (t) => {
  const rng = new Rng(3);
  for (const shape of [[1, 2], [3, 6, 5], [2, 10, 7, 3]]) {
    const [b, c2, ...rest] = shape;
    const s = rest.reduce((a, d) => a * d, 1);
    const c = c2 / 2;
    const x = rng.uniformArray(b * c2 * s, -6, 6);
    const want = new Float64Array(b * c * s);
    for (let bi = 0; bi < b; bi++) for (let ci = 0; ci < c; ci++) for (let si = 0; si < s; si++) {
      const a = x[bi * c2 * s + ci * s + si];
      const g = x[bi * c2 * s + (ci + c) * s + si];
      want[bi * c * s + ci * s + si] = Math.tanh(a) / (1 + Math.exp(-g));
    }
    const y = gatedActivation(tensor(x, shape));
    t.same(y.shape, [b, c, ...rest]);
    assertClose(t, await y.read(), want, { rtol: 1e-5, atol: 1e-6 }, `shape ${shape}`);
  }
  t.throws(() => gatedActivation(tensor([1, 2, 3], [1, 3])), /needs an even channel axis/);
});

t.test('finite-difference gradient', async (t) => {
  const failures = await gradcheck((xs) => gatedActivation(xs[0]), [{ data: new Rng(4).uniformArray(2 * 6 * 3, -2, 2), shape: [2, 6, 3] }]);
  t.same(failures, []);
});
