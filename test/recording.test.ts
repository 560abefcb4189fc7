// Recorded steps (engine/recording.ts): a VQ-VAE trained eagerly and by one recorded step plus
// replays from the same init and batches ends bitwise equal (losses, every weight and EMA
// tensor, Adam's moments), with the codebook loss or the EMA codebook with restarts, a constant
// or cosine learning rate; replays allocate nothing and make no bind groups; a disposed weight,
// a readback inside the step and a new shape are handled; the static memory plan's buffers
// stay out of the pool until dispose.
import t, { type Test } from 'tap';
import { gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { add, scale } from '../engine/elementwise.js';
import { Adam, SGD } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { type Recording, StepRecordings, recordStep } from '../engine/recording.js';
import { destroyGpu, rt } from '../engine/runtime.js';
import { type Tensor, empty, keep, tensor, tidy, zeros } from '../engine/tensor.js';
import type { VqVaeConfig } from '../model/config.js';
import { VqVae } from '../model/vqvae.js';

await gpu(t);

const small: Partial<VqVaeConfig> = { hidden: 16, residualHidden: 8, codebookSize: 32, embeddingDim: 8 };
const SIZE = 16;
const STEPS = 4;

function batches(count: number, B: number): Float32Array[] {
  const rng = new Rng(7);
  return Array.from({ length: count }, () => rng.uniformArray(B * 3 * SIZE * SIZE, -0.5, 0.5));
}

/** Cosine decay over 4 steps, or constant. */
function lrAt(lr: number, cosine: boolean, s: number): number {
  return cosine ? (lr * (1 + Math.cos((Math.PI * s) / STEPS))) / 2 : lr;
}

interface Losses {
  loss: Tensor;
  recon: Tensor;
  perplexity: Tensor;
}

/** One training step on the batch in `x` (the recorded unit: forward, backward, Adam, zeroGrad). */
function step(model: VqVae, opt: Adam, x: Tensor): Losses {
  const out = tidy(() => {
    const o = model.forward(x, { train: true });
    backward(o.loss);
    return { loss: o.loss, recon: o.recon, perplexity: o.perplexity };
  });
  opt.step();
  opt.zeroGrad();
  return out;
}

interface Trained {
  losses: number[];
  state: Map<string, Float32Array>;
}

async function snapshot(model: VqVae, opt: Adam, losses: number[]): Promise<Trained> {
  const state = new Map<string, Float32Array>();
  for (const [name, v] of model.state) state.set(name, (await v.read()) as Float32Array);
  const s = await opt.state();
  s.params.forEach((p, i) => {
    state.set(`adam.${i}.m`, p!.m);
    state.set(`adam.${i}.v`, p!.v);
  });
  return { losses, state };
}

async function train(cfg: Partial<VqVaeConfig>, cosine: boolean, recorded: boolean): Promise<Trained & { rec?: Recording<Losses> }> {
  const B = 2;
  const data = batches(STEPS, B);
  const model = new VqVae(cfg, { seed: 3 });
  const opt = new Adam(model.parameters(), { lr: 2e-3 });
  const x = keep(empty([B, 3, SIZE, SIZE]));
  const losses: number[] = [];
  let rec: Recording<Losses> | undefined;
  for (let s = 0; s < STEPS; s++) {
    rt().overwrite(x.buffer, data[s]);
    opt.lr = lrAt(2e-3, cosine, s);
    let out: Losses;
    if (!recorded) out = step(model, opt, x);
    else if (!rec) out = (rec = recordStep(() => step(model, opt, x))).result;
    else out = rec.replay();
    losses.push(await out.loss.item(), await out.recon.item(), await out.perplexity.item());
    if (!recorded) for (const v of Object.values(out)) v.dispose();
  }
  const snap = await snapshot(model, opt, losses);
  rec?.dispose();
  x.dispose();
  opt.dispose();
  model.dispose();
  return snap;
}

function bitwise(t: Test, got: Trained, want: Trained, label: string): void {
  const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Buffer.compare(Buffer.from(new Float32Array(a).buffer), Buffer.from(new Float32Array(b).buffer)) === 0;
  t.ok(same(got.losses, want.losses), `${label}: losses bitwise equal (${want.losses.slice(0, 3).join(', ')} ...)`);
  const differing = [...want.state].filter(([name, w]) => !same(got.state.get(name) ?? [], w)).map(([name]) => name);
  t.same(differing, [], `${label}: all ${want.state.size} weights, EMA tensors and Adam moments bitwise equal`);
}

for (const [label, cfg, cosine] of [
  ['codebook loss, constant lr', small, false],
  ['codebook loss, cosine lr', small, true],
  ['EMA codebook with restarts, cosine lr', { ...small, ema: true, deadCodeThreshold: 1 }, true],
] as const) {
  t.test(`${STEPS} eager steps equal 1 recorded + ${STEPS - 1} replayed (${label})`, async (t) => {
    const eager = await train(cfg, cosine, false);
    const replayed = await train(cfg, cosine, true);
    bitwise(t, replayed, eager, label);
  });
}

t.test('a replay makes no bind groups, allocates nothing and makes the recorded dispatches', async (t) => {
  const model = new VqVae(small, { seed: 1 });
  const opt = new Adam(model.parameters());
  const x = keep(tensor(batches(1, 2)[0], [2, 3, SIZE, SIZE]));
  const r = rt();
  for (const v of Object.values(step(model, opt, x))) v.dispose(); // the first step also zeroes Adam's state
  const eager0 = r.dispatchCount;
  for (const v of Object.values(step(model, opt, x))) v.dispose();
  const eagerDispatches = r.dispatchCount - eager0;
  const rec = recordStep(() => step(model, opt, x));
  await r.sync();
  t.equal(rec.dispatches, eagerDispatches, `the recording holds the step's ${eagerDispatches} dispatches`);
  t.equal(rec.recordedWriteBytes, 0, 'a training step uploads nothing inside (its batch is written before it)');
  const groups = r.bindGroupStats.created;
  const pool = r.pool.stats();
  const d0 = r.dispatchCount;
  rec.replay();
  rec.replay();
  await r.sync();
  t.equal(r.dispatchCount - d0, 2 * rec.dispatches, 'two replays, twice the dispatches');
  t.equal(r.bindGroupStats.created, groups, 'no bind group created');
  t.same({ live: r.pool.stats().liveBytes, pooled: r.pool.stats().pooledBytes }, { live: pool.liveBytes, pooled: pool.pooledBytes }, 'no pool buffer taken or given');
  t.equal(opt.stepCount, 5, 'each replay counts an optimiser step');
  rec.dispose();
  x.dispose();
  opt.dispose();
  model.dispose();
});

t.test('the static memory plan: pinned buffers stay out of the pool until dispose', async (t) => {
  const model = new VqVae(small, { seed: 2 });
  const opt = new Adam(model.parameters());
  const x = keep(tensor(batches(1, 2)[0], [2, 3, SIZE, SIZE]));
  const r = rt();
  const before = r.pool.stats();
  const rec = recordStep(() => step(model, opt, x));
  const pinned = new Set(rec.pinnedBuffers());
  t.ok(pinned.size > 10, `${pinned.size} buffers (${rec.pinnedBytes} bytes) pinned`);
  const during = r.pool.stats();
  // everything the step made beyond the optimiser's state and the results is pinned
  t.ok(during.liveBytes - before.liveBytes >= rec.pinnedBytes, 'pinned bytes count as live');
  const sizes = new Set([...pinned].map((b) => b.size));
  const handedOut: GPUBuffer[] = [];
  for (const size of sizes) for (let i = 0; i <= during.pooledBuffers; i++) handedOut.push(r.pool.acquire(size));
  t.equal(handedOut.filter((b) => pinned.has(b)).length, 0, `none of ${handedOut.length} buffers acquired is pinned`);
  for (const b of handedOut) r.pool.release(b);
  r.flush();
  const live = r.pool.stats().liveBytes;
  const resultBytes = Object.values(rec.result).reduce((n, v) => n + v.buffer.size, 0);
  const pinnedBytes = rec.pinnedBytes;
  rec.dispose();
  empty([1]).dispose(); // released buffers return to the pool at the next submit
  zeros([1]).dispose();
  r.flush();
  t.equal(live - r.pool.stats().liveBytes, pinnedBytes + resultBytes, 'dispose gives the pinned buffers and the results back');
  const again: GPUBuffer[] = [];
  for (const size of sizes) for (let i = 0; i < 4; i++) again.push(r.pool.acquire(size));
  t.ok(again.some((b) => pinned.has(b)), 'after dispose the pool hands the pinned buffers out again');
  for (const b of again) r.pool.release(b);
  x.dispose();
  opt.dispose();
  model.dispose();
});

t.test('a disposed weight invalidates the recording: replay throws one line', async (t) => {
  const model = new VqVae(small, { seed: 4 });
  const opt = new Adam(model.parameters());
  const x = keep(tensor(batches(1, 2)[0], [2, 3, SIZE, SIZE]));
  const rec = recordStep(() => step(model, opt, x));
  rec.replay();
  t.ok(rec.valid, 'valid while everything it binds lives');
  model.state.get('_decoder._conv_1.weight')!.dispose();
  t.notOk(rec.valid, 'invalid once a weight is disposed');
  const err = (() => {
    try {
      rec.replay();
      return null;
    } catch (e) {
      return e as Error;
    }
  })();
  t.ok(err && /cannot be replayed: a buffer it binds was released/.test(err.message), `replay throws: ${err?.message}`);
  t.notOk(err?.message.includes('\n'), 'in one line');
  const steps = opt.stepCount;
  t.equal(steps, 2, 'the refused replay took no optimiser step');
  rec.dispose();
  x.dispose();
  opt.dispose();
  model.dispose();
});

t.test('a readback inside the recorded step is an error', async (t) => {
  const a = keep(tensor([1, 2, 3]));
  t.throws(() => recordStep(() => void a.read().catch(() => {})), /readback inside recordStep cannot be replayed/, 'a read in a synchronous step');
  t.throws(() => recordStep((async () => { await a.read().catch(() => 0); }) as never), /readback inside recordStep cannot be replayed/, 'an awaited read');
  t.throws(() => recordStep((async () => {}) as never), /synchronous/, 'an async step');
  t.notOk(rt().capturing, 'no capture left open');
  t.equal((await a.read())[2], 3, 'reads work again after');
  a.dispose();
});

t.test('recordings keyed by shape: a new batch size records a new step, the old one replays', async (t) => {
  const model = new VqVae(small, { seed: 5 });
  const opt = new Adam(model.parameters());
  const inputs = new Map([2, 3].map((B) => [B, keep(tensor(batches(1, B)[0], [B, 3, SIZE, SIZE]))]));
  const steps = new StepRecordings<Losses>();
  const ran = (B: number) => steps.run(`b${B}`, () => step(model, opt, inputs.get(B)!)).recorded;
  t.same([ran(2), ran(2), ran(3), ran(3), ran(2)], [true, false, true, false, false], 'recorded once per shape, replayed after');
  t.not(steps.get('b2'), steps.get('b3'), 'one recording per key');
  const loss3 = await steps.get('b3')!.result.loss.item();
  t.ok(Number.isFinite(loss3), `batch 3 loss ${loss3}`);
  // Adam's state replaced (a checkpoint load) invalidates both; run() records again.
  const state = await opt.state();
  opt.loadState(state);
  t.notOk(steps.get('b2')!.valid, 'loadState invalidates the recording');
  t.equal(ran(2), true, 'an invalid recording is recorded again');
  steps.dispose();
  for (const x of inputs.values()) x.dispose();
  opt.dispose();
  model.dispose();
});

t.test('SGD with momentum and dampening: recorded and replayed steps equal eager ones bitwise, lr changed between steps', async (t) => {
  const rng = new Rng(11);
  const shapes = [[5], [3, 7], [300]];
  const init = shapes.map((s) => rng.uniformArray(s.reduce((a, b) => a * b, 1), -1, 1));
  const grads = [0, 1, 2].map(() => init.map((d) => rng.uniformArray(d.length, -1, 1)));
  const run = async (recorded: boolean) => {
    const params = init.map((d, i) => keep(tensor(d, shapes[i])).requireGrad());
    for (const p of params) p.grad = keep(empty(p.shape));
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9, dampening: 0.3 });
    let rec: Recording<void> | undefined;
    for (let s = 0; s < 3; s++) {
      params.forEach((p, i) => rt().overwrite(p.grad!.buffer, grads[s][i]));
      opt.lr = 0.1 / (s + 1);
      if (!recorded) opt.step();
      else if (!rec) rec = recordStep(() => opt.step());
      else rec.replay();
    }
    const out = await Promise.all(params.map((p) => p.read()));
    rec?.dispose();
    opt.dispose();
    for (const p of params) {
      p.grad!.dispose();
      p.dispose();
    }
    return out;
  };
  const eager = await run(false);
  const replayed = await run(true);
  t.ok(eager.every((e, i) => Buffer.compare(Buffer.from(e.buffer), Buffer.from(replayed[i].buffer)) === 0), 'parameters bitwise equal');
});

t.test('writes inside the step replay in order, with the bytes recorded', async (t) => {
  const a = keep(tensor([1, 2, 3, 4]));
  const rec = recordStep(() => {
    const b = scale(a, 2); // reads a before the write below
    rt().overwrite(a.buffer, Float32Array.of(7, 7, 7, 7));
    return add(b, add(a, tensor([0.5, 0.5, 0.5, 0.5]))); // reads the new a and an upload
  });
  t.same([...(await rec.result.read())], [9.5, 11.5, 13.5, 15.5], 'the recorded run');
  t.equal(rec.recordedWriteBytes, 32, 'the overwrite and the upload are recorded');
  rec.replay();
  t.same([...(await rec.result.read())], [21.5, 21.5, 21.5, 21.5], 'the replay reads a before and after its write, in order');
  rec.dispose();
  a.dispose();
});

// Last: it ends this file's device.
t.test('after the device is lost a replay throws and dispose still works', async (t) => {
  const p = keep(tensor([1, 2, 3])).requireGrad();
  p.grad = keep(tensor([1, 1, 1]));
  const opt = new SGD([p], { lr: 0.5 });
  const rec = recordStep(() => opt.step());
  rec.replay();
  t.equal((await p.read())[0], 0, 'two steps of lr 0.5 from 1 with gradient 1');
  const device = rt().device;
  destroyGpu();
  await device.lost;
  t.notOk(rec.valid, 'invalid once the device is gone');
  t.throws(() => rec.replay(), /cannot be replayed: the GPU device was lost; record the step again/);
  t.doesNotThrow(() => rec.dispose(), 'dispose after the loss');
});
