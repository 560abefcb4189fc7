// 200 training steps (forward, backward, Adam) inside tidy keep live GPU memory flat.
import t from 'tap';
import { gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { memory, randn, tidy } from '../engine/tensor.js';
import { Rng } from '../engine/random.js';
import { add, relu } from '../engine/elementwise.js';
import { matmul } from '../engine/matmul.js';
import { mseLoss } from '../engine/loss.js';
import { Adam } from '../engine/optim.js';

const r = await gpu(t);

t.test('200 steps of forward, backward and Adam leak nothing', async (t) => {
  const rng = new Rng(5);
  const w1 = randn([16, 32], { rng, std: 0.3 }).requireGrad();
  const b1 = randn([32], { rng, std: 0.1 }).requireGrad();
  const w2 = randn([32, 16], { rng, std: 0.3 }).requireGrad();
  const params = [w1, b1, w2];
  const opt = new Adam(params, { lr: 1e-2 });
  const step = () => {
    const loss = tidy(() => {
      const x = randn([24, 16], { rng });
      const y = matmul(relu(add(matmul(x, w1), b1)), w2);
      const l = mseLoss(y, x);
      backward(l);
      return l;
    });
    opt.step();
    opt.zeroGrad();
    return loss;
  };
  let first = 0;
  let last = 0;
  let liveAfterWarmup = 0;
  for (let i = 0; i < 200; i++) {
    const loss = step();
    if (i === 0) first = await loss.item();
    if (i === 199) last = await loss.item();
    loss.dispose();
    if (i === 9) {
      await r.sync();
      liveAfterWarmup = memory().liveBytes;
    }
  }
  await r.sync();
  const live = memory().liveBytes;
  t.equal(live, liveAfterWarmup, `live bytes flat over 190 steps (${liveAfterWarmup} -> ${live})`);
  t.ok(last < first, `the loss falls (${first} -> ${last})`);
  t.ok(memory().pooledBytes < 64 * 1024 * 1024, 'the pool stays small');
});
