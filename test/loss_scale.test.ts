// Dynamic loss scaling (engine/loss_scale.ts): the scaled backward and the unscaled Adam step are
// bitwise the unscaled ones (power-of-two scales), an inf/NaN gradient skips the step and halves
// the scale, clean steps grow it, the state round-trips, and a step reads nothing back.
import t from 'tap';
import { gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import * as E from '../engine/elementwise.js';
import { LossScaler } from '../engine/loss_scale.js';
import { Adam } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { sum } from '../engine/reduce.js';
import { type Tensor, tensor, tidy } from '../engine/tensor.js';
import { VqVae } from '../model/vqvae.js';

const rt = await gpu(t);

const SIZES = [1, 3, 5, 1027];

function makeParams(seed: number): Tensor[] {
  const rng = new Rng(seed);
  return SIZES.map((n) => tensor(rng.uniformArray(n, -1, 1), [n]).requireGrad());
}

function setGrads(params: Tensor[], grads: Float32Array[], scale = 1): void {
  params.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(grads[i].map((g) => g * scale), p.shape);
  });
}

async function snapshot(params: Tensor[], opt: Adam): Promise<number[][]> {
  const out: number[][] = [];
  for (const p of params) out.push(Array.from(new Uint32Array(((await p.read()) as Float32Array).buffer)));
  for (const s of (await opt.state()).params) {
    if (s) out.push(Array.from(new Uint32Array(s.m.buffer)), Array.from(new Uint32Array(s.v.buffer)));
  }
  return out;
}

t.test('scaled step = plain Adam, bitwise (power-of-two scales unscale exactly)', async (t) => {
  for (const weightDecay of [0, 0.01]) {
    const plain = makeParams(1);
    const scaled = makeParams(1);
    const optPlain = new Adam(plain, { lr: 1e-2, weightDecay });
    const optScaled = new Adam(scaled, { lr: 1e-2, weightDecay });
    const scaler = new LossScaler({ initScale: 2 ** 12, growthInterval: 2 });
    const rng = new Rng(2);
    let scale = 2 ** 12;
    for (let step = 0; step < 5; step++) {
      const grads = SIZES.map((n) => rng.uniformArray(n, -3, 3));
      setGrads(plain, grads);
      setGrads(scaled, grads, scale); // what a backward of the scaled loss gives
      optPlain.step();
      scaler.step(optScaled);
      if ((step + 1) % 2 === 0) scale *= 2;
      t.equal((await scaler.read()).scale, scale, `scale after step ${step + 1}`);
    }
    t.same(await snapshot(scaled, optScaled), await snapshot(plain, optPlain), `parameters and moments bitwise equal (weight decay ${weightDecay})`);
    for (const p of [...plain, ...scaled]) {
      p.grad?.dispose();
      p.dispose();
    }
    optPlain.dispose();
    optScaled.dispose();
    scaler.dispose();
  }
});

t.test('scaleLoss: the loss and every gradient times the scale, exactly', async (t) => {
  const scaler = new LossScaler({ initScale: 2 ** 16 });
  const w = tensor([0.1, -0.2, 0.3], [3]).requireGrad();
  const x = tensor([1e-3, 2, -7], [3]);
  const loss = sum(E.mul(w, x));
  const scaled = scaler.scaleLoss(loss);
  t.equal(await scaled.item(), (await loss.item()) * 2 ** 16, 'scaled loss');
  backward(scaled);
  t.same(Array.from(await w.grad!.read()), Array.from(await x.read(), (v) => v * 2 ** 16), 'gradient times 2^16');
  t.throws(() => scaler.scaleLoss(tensor([1], [1], 'u32')), /LossScaler.scaleLoss: expected f32/);
  scaler.dispose();
});

t.test('an inf or NaN gradient skips the step (nothing written) and halves the scale', async (t) => {
  const params = makeParams(3);
  const opt = new Adam(params, { lr: 1e-2 });
  const scaler = new LossScaler(); // 2^16, growth 2 every 2000 steps, backoff 0.5
  const rng = new Rng(4);
  const clean = () => SIZES.map((n) => rng.uniformArray(n, -1, 1));
  setGrads(params, clean(), 2 ** 16);
  scaler.step(opt);
  t.same(await scaler.read(), { scale: 2 ** 16, growthTracker: 1, skippedSteps: 0, steps: 1 }, 'a clean step');
  for (const [bad, scale] of [[Infinity, 2 ** 15], [NaN, 2 ** 14], [-Infinity, 2 ** 13]] as const) {
    const before = await snapshot(params, opt);
    const grads = clean();
    grads[3][1026] = bad; // the last element of the largest gradient
    setGrads(params, grads, scale * 2);
    scaler.step(opt);
    t.same(await snapshot(params, opt), before, `${bad}: parameters and moments untouched`);
    const s = await scaler.read();
    t.equal(s.scale, scale, `${bad}: scale halved`);
    t.equal(s.growthTracker, 0, `${bad}: growth tracker reset`);
  }
  t.same(await scaler.read(), { scale: 2 ** 13, growthTracker: 0, skippedSteps: 3, steps: 4 });
  setGrads(params, clean(), 2 ** 13);
  const before = await snapshot(params, opt);
  scaler.step(opt);
  t.not(JSON.stringify(await snapshot(params, opt)), JSON.stringify(before), 'the next clean step updates again');
  t.same(await scaler.read(), { scale: 2 ** 13, growthTracker: 1, skippedSteps: 3, steps: 5 }, 'found-inf was cleared');
  opt.dispose();
  scaler.dispose();
});

t.test('the scale grows after growthInterval clean steps in a row, and never to infinity', async (t) => {
  const params = makeParams(5);
  const opt = new Adam(params);
  const scaler = new LossScaler({ initScale: 4, growthInterval: 3 });
  const rng = new Rng(6);
  const step = (bad = false) => {
    const grads = SIZES.map((n) => rng.uniformArray(n, -1, 1));
    if (bad) grads[0][0] = Infinity;
    setGrads(params, grads);
    scaler.step(opt);
  };
  const scales: number[] = [];
  for (const bad of [false, false, false, false, false, true, false, false, false]) {
    step(bad);
    scales.push((await scaler.read()).scale);
  }
  t.same(scales, [4, 4, 8, 8, 8, 4, 4, 4, 8], 'x2 after 3 clean steps; an overflow halves and restarts the count');
  scaler.dispose();

  const top = new LossScaler({ initScale: 2 ** 127, growthInterval: 1 });
  setGrads(params, SIZES.map((n) => new Float32Array(n)));
  top.step(opt);
  t.same(await top.read(), { scale: 2 ** 127, growthTracker: 0, skippedSteps: 0, steps: 1 }, '2^128 would overflow f32: the scale stays');
  top.dispose();
  opt.dispose();
});

t.test('state round-trips; disabled scaling is the plain step; bad options are refused', async (t) => {
  const scaler = new LossScaler();
  const state = { scale: 512, growthTracker: 7, skippedSteps: 2, steps: 30 };
  scaler.loadState(state);
  t.same(await scaler.read(), state);
  scaler.dispose();

  const off = new LossScaler({ enabled: false });
  const loss = tensor([2], []);
  t.equal(off.scaleLoss(loss), loss, 'disabled: the loss itself');
  const a = makeParams(7);
  const b = makeParams(7);
  const optA = new Adam(a);
  const optB = new Adam(b);
  const grads = SIZES.map((n) => new Rng(n).uniformArray(n, -1, 1));
  setGrads(a, grads);
  setGrads(b, grads);
  off.step(optA);
  optB.step();
  t.same(await snapshot(a, optA), await snapshot(b, optB), 'disabled: bitwise the optimiser step');
  t.same(await off.read(), { scale: 1, growthTracker: 0, skippedSteps: 0, steps: 0 }, 'disabled: scale 1');

  t.throws(() => new LossScaler({ growthFactor: 1 }), /LossScaler: invalid growthFactor 1/);
  t.throws(() => new LossScaler({ backoffFactor: 2 }), /LossScaler: invalid backoffFactor 2/);
  t.throws(() => new LossScaler({ growthInterval: 0.5 }), /LossScaler: invalid growthInterval 0.5/);
  t.throws(() => new LossScaler({ initScale: 0 }), /LossScaler: invalid initScale 0/);
});

t.test('an f16 training step with loss scaling reads nothing back', async (t) => {
  const model = new VqVae({ hidden: 16, residualHidden: 8, residualBlocks: 1, codebookSize: 16, embeddingDim: 8 }, { seed: 1 });
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const scaler = new LossScaler();
  const x = tensor(new Rng(2).uniformArray(2 * 3 * 16 * 16, -0.5, 0.5), [2, 3, 16, 16]);
  // count the ways the CPU could wait for the GPU
  const counts = { read: 0, sync: 0, mapAsync: 0 };
  const read = rt.read.bind(rt);
  const sync = rt.sync.bind(rt);
  rt.read = (...args) => (counts.read++, read(...args));
  rt.sync = () => (counts.sync++, sync());
  const probe = rt.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const proto = Object.getPrototypeOf(probe) as { mapAsync: (...a: unknown[]) => Promise<void> };
  probe.destroy();
  const mapAsync = proto.mapAsync;
  proto.mapAsync = function (this: unknown, ...args: unknown[]) {
    counts.mapAsync++;
    return mapAsync.apply(this, args);
  };
  const losses: Tensor[] = [];
  try {
    for (let step = 0; step < 3; step++) {
      losses.push(
        tidy(() => {
          const out = model.forward(x, { train: true, precision: 'f16' });
          backward(scaler.scaleLoss(out.loss));
          scaler.step(opt);
          opt.zeroGrad();
          return out.loss;
        }),
      );
    }
    rt.flush();
    t.same(counts, { read: 0, sync: 0, mapAsync: 0 }, 'three steps: no read, sync or map');
  } finally {
    rt.read = read;
    rt.sync = sync;
    proto.mapAsync = mapAsync;
  }
  const values = [];
  for (const l of losses) values.push(await l.item());
  t.ok(values.every(Number.isFinite), `losses ${values.map((v) => v.toFixed(4)).join(', ')}`);
  t.ok(values[2] < values[0], 'the loss falls');
  t.same(await scaler.read(), { scale: 2 ** 16, growthTracker: 3, skippedSteps: 0, steps: 3 });
  model.dispose();
  opt.dispose();
  scaler.dispose();
});
