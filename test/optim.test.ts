// Adam and SGD against float64 CPU reimplementations of PyTorch's update rules
// (torch.optim.Adam / torch.optim.SGD, single-tensor path) over several steps with changing
// gradients, a learning-rate change, skipped parameters, checkpoint round trips, errors, and a
// recorded step replayed with new gradients and learning rates (engine/recording.ts).
import t from 'tap';
import { assertClose, gpu, randomArray } from './helpers.js';
import { Rng } from '../engine/random.js';
import { type Tensor, keep, tensor } from '../engine/tensor.js';
import { Adam, SGD } from '../engine/optim.js';
import { type Recording, recordStep } from '../engine/recording.js';
import { rt } from '../engine/runtime.js';
import { type RefAdam, RefAdamParam } from './ref/optim.js';

await gpu(t);
const rng = new Rng(99);
const size = (s: number[]) => s.reduce((a, d) => a * d, 1);

/**
 * Relative tolerance 1e-6, measured against each element and (as atol) against the tensor's
 * largest magnitude: m is an average of gradients of both signs, so single elements can cancel
 * to far below the f32 rounding of the terms that made them (about 6e-8 of the largest).
 */
function closeTo(t: Parameters<typeof assertClose>[0], got: ArrayLike<number>, ref: ArrayLike<number>, label: string): void {
  let max = 0;
  for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(ref[i]));
  assertClose(t, got, ref, { rtol: 1e-6, atol: 1e-6 * max }, label);
}

/** Random gradients with a spread of magnitudes (1e-4 .. 1), so eps and v both matter. */
function gradData(n: number): Float32Array {
  const g = randomArray(rng, n);
  for (let i = 0; i < n; i++) g[i] *= 10 ** -rng.int(5);
  return g;
}

function setGrad(p: Tensor, g: Float32Array): void {
  p.grad?.dispose();
  p.grad = tensor(g, p.shape);
}

t.test('Adam matches PyTorch semantics over 5 steps (defaults and custom hyperparameters)', async (t) => {
  const configs: { opts: ConstructorParameters<typeof Adam>[1]; ref: RefAdam; lrAt3?: number }[] = [
    { opts: {}, ref: { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0 } },
    { opts: { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 }, ref: { lr: 0.01, b1: 0.8, b2: 0.99, eps: 1e-6, wd: 0.1 }, lrAt3: 0.003 },
  ];
  const shapes = [[7], [3, 5], [1], [100003]];
  for (const { opts, ref, lrAt3 } of configs) {
    const init = shapes.map((s) => randomArray(rng, size(s), -2, 2));
    const params = shapes.map((s, i) => tensor(init[i], s).requireGrad());
    const refs = init.map((d) => new RefAdamParam(Float64Array.from(d)));
    const adam = new Adam(params, opts);
    for (let step = 1; step <= 5; step++) {
      if (step === 3 && lrAt3 !== undefined) adam.lr = ref.lr = lrAt3; // a schedule
      params.forEach((p, i) => {
        if (i === 2 && step === 2) {
          p.grad?.dispose();
          p.grad = null; // no gradient: skipped, its step count does not advance
          return;
        }
        const g = gradData(p.size);
        setGrad(p, g);
        refs[i].update(g, ref);
      });
      adam.step();
    }
    t.equal(adam.stepCount, 5);
    const state = await adam.state();
    for (let i = 0; i < params.length; i++) {
      const label = `Adam ${JSON.stringify(opts)} param [${shapes[i]}]`;
      closeTo(t, await params[i].read(), refs[i].p, `${label} value`);
      closeTo(t, state.params[i]!.m, refs[i].m, `${label} m`);
      closeTo(t, state.params[i]!.v, refs[i].v, `${label} v`);
      t.equal(state.params[i]!.step, refs[i].step, `${label} step`);
    }
    adam.zeroGrad();
    const before = await params[0].read();
    t.ok(params.every((p) => p.grad === null), 'zeroGrad clears gradients');
    adam.step(); // nothing has a gradient: a no-op
    t.same(await params[0].read(), before, 'a step without gradients changes nothing');
    adam.dispose();
  }
});

t.test('Adam state() / loadState() resume bit for bit', async (t) => {
  const shapes = [[4, 3], [5]];
  const init = shapes.map((s) => randomArray(rng, size(s)));
  const grads = Array.from({ length: 5 }, () => shapes.map((s) => gradData(size(s))));
  const run = async (split: boolean) => {
    let params = shapes.map((s, i) => tensor(init[i], s).requireGrad());
    let adam = new Adam(params, { lr: 0.02, weightDecay: 0.01 });
    for (let step = 0; step < 5; step++) {
      if (split && step === 3) {
        const state = await adam.state();
        const values = await Promise.all(params.map((p) => p.read()));
        adam.dispose();
        params = shapes.map((s, i) => tensor(values[i], s).requireGrad());
        adam = new Adam(params, { lr: 0.5, weightDecay: 0.01 });
        adam.loadState(structuredClone(state));
        t.equal(adam.lr, 0.02, 'lr restored');
        t.equal(adam.stepCount, 3, 'stepCount restored');
      }
      params.forEach((p, i) => setGrad(p, grads[step][i]));
      adam.step();
    }
    return Promise.all(params.map((p) => p.read()));
  };
  const straight = await run(false);
  const resumed = await run(true);
  t.same(resumed, straight);
  const adam = new Adam([tensor([1, 2]).requireGrad()]);
  t.throws(
    () => adam.loadState({ stepCount: 1, lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, params: [{ step: 1, m: new Float32Array(3), v: new Float32Array(3) }] }),
    /Adam.loadState: parameter 0 has 2 elements, state has 3 and 3/,
  );
  t.throws(() => adam.loadState({ stepCount: 0, lr: 1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, params: [] }), /state has 0 parameters, optimiser has 1/);
});

t.test('SGD matches PyTorch semantics (plain, momentum, dampening, Nesterov, weight decay)', async (t) => {
  const configs = [
    { lr: 0.1 },
    { lr: 0.05, weightDecay: 0.01 },
    { lr: 0.1, momentum: 0.9 },
    { lr: 0.1, momentum: 0.8, dampening: 0.3, weightDecay: 0.02 },
    { lr: 0.03, momentum: 0.9, nesterov: true, weightDecay: 0.1 },
  ];
  const shapes = [[6], [2, 3, 5], [300]];
  for (const opts of configs) {
    const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = opts;
    const init = shapes.map((s) => randomArray(rng, size(s)));
    const params = shapes.map((s, i) => tensor(init[i], s).requireGrad());
    const refP = init.map((d) => Float64Array.from(d));
    const refBuf: (Float64Array | null)[] = shapes.map(() => null);
    const sgd = new SGD(params, opts);
    for (let step = 0; step < 5; step++) {
      params.forEach((p, i) => {
        const g = gradData(p.size);
        setGrad(p, g);
        const x = refP[i];
        const d = Float64Array.from(g, (v, k) => v + weightDecay * x[k]);
        if (momentum !== 0) {
          const b = refBuf[i];
          if (!b) refBuf[i] = Float64Array.from(d);
          else for (let k = 0; k < b.length; k++) b[k] = momentum * b[k] + (1 - dampening) * d[k];
          const buf = refBuf[i]!;
          for (let k = 0; k < d.length; k++) d[k] = nesterov ? d[k] + momentum * buf[k] : buf[k];
        }
        for (let k = 0; k < x.length; k++) x[k] -= lr * d[k];
      });
      sgd.step();
    }
    const state = await sgd.state();
    for (let i = 0; i < params.length; i++) {
      closeTo(t, await params[i].read(), refP[i], `SGD ${JSON.stringify(opts)} [${shapes[i]}]`);
      if (momentum) closeTo(t, state.params[i]!.momentumBuffer, refBuf[i]!, 'momentum buffer');
      else t.equal(state.params[i], null, 'no momentum buffer');
    }
    sgd.dispose();
  }
});

t.test('optimiser errors', async (t) => {
  const p = tensor([1, 2, 3]);
  t.throws(() => new Adam([p]), /Adam: parameters must be leaf tensors with requiresGrad, got Tensor #\d+ f32\[3\]/);
  t.throws(() => new SGD([p], { lr: 0.1 }), /SGD: parameters must be leaf tensors with requiresGrad/);
  p.requireGrad();
  t.throws(() => new Adam([p, p]), /is listed twice/);
  t.throws(() => new Adam([]), /no parameters/);
  t.throws(() => new Adam([p], { betas: [1, 0.999] }), /Adam: invalid beta 1/);
  t.throws(() => new Adam([p], { lr: Number.NaN }), /Adam: invalid lr NaN/);
  t.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum requires a momentum/);
  const adam = new Adam([p]);
  p.grad = tensor([1, 2], [2]);
  t.throws(() => adam.step(), /Adam: gradient Tensor #\d+ f32\[2\] does not match parameter Tensor #\d+ f32\[3\]/);
});

t.test('Adam recorded once and replayed matches PyTorch semantics: new gradients, a schedule, a parameter without gradient', async (t) => {
  const shapes = [[7], [3, 5], [1000]];
  const init = shapes.map((s) => randomArray(rng, size(s), -2, 2));
  const params = shapes.map((s, i) => tensor(init[i], s).requireGrad());
  const refs = init.map((d) => new RefAdamParam(Float64Array.from(d)));
  const ref: RefAdam = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05 };
  const adam = new Adam(params, { lr: ref.lr, weightDecay: ref.wd });
  // the gradients live in fixed tensors written before each step; the last parameter has none
  for (const p of params.slice(0, 2)) p.grad = keep(tensor(new Float32Array(p.size), p.shape));
  let rec: Recording<void> | null = null;
  for (let step = 1; step <= 5; step++) {
    adam.lr = ref.lr = 0.01 / step;
    params.slice(0, 2).forEach((p, i) => {
      const g = gradData(p.size);
      rt().overwrite(p.grad!.buffer, g);
      refs[i].update(g, ref);
    });
    if (rec) rec.replay();
    else rec = recordStep(() => adam.step());
  }
  rec!.dispose();
  t.equal(adam.stepCount, 1 + 4, 'the recorded run and four replays');
  t.equal((await adam.state()).params[2], null, 'the parameter without gradient has no state and took no step');
  t.same([...(await params[2].read())], [...init[2]], 'nor moved');
  for (let i = 0; i < 2; i++) closeTo(t, await params[i].read(), refs[i].p, `param [${shapes[i]}]`);
  adam.dispose();
  for (const p of params) {
    p.grad?.dispose();
    p.dispose();
  }
});
