// The training loop of the leak checks, shared by test/leak.test.ts and the browser suite
// (test/browser/suite.ts). Platform-free: no node:*, no tap.
import { backward } from '../../engine/autograd.js';
import { add, relu } from '../../engine/elementwise.js';
import { mseLoss } from '../../engine/loss.js';
import { matmul } from '../../engine/matmul.js';
import { Adam } from '../../engine/optim.js';
import { Rng } from '../../engine/random.js';
import { rt } from '../../engine/runtime.js';
import { memory, randn, tidy } from '../../engine/tensor.js';

export interface LeakRun {
  /** The loss at the first and the last step. */
  first: number;
  last: number;
  /** Live bytes after step 10 (the pool warmed up) and after the last step. */
  liveAfterWarmup: number;
  live: number;
  /** Frees the parameters and the optimiser (left to the caller, which may look at memory first). */
  dispose: () => void;
}

/** `steps` steps of forward, backward and Adam on a small MLP, each step inside tidy. */
export async function trainSmallMlp(steps: number): Promise<LeakRun> {
  const r = rt();
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
  for (let i = 0; i < steps; i++) {
    const loss = step();
    if (i === 0) first = await loss.item();
    if (i === steps - 1) last = await loss.item();
    loss.dispose();
    if (i === 9) {
      await r.sync();
      liveAfterWarmup = memory().liveBytes;
    }
  }
  await r.sync();
  const live = memory().liveBytes;
  const dispose = () => {
    opt.dispose();
    for (const p of params) p.dispose();
  };
  return { first, last, liveAfterWarmup, live, dispose };
}
