// Fused kernels (flag `fuse`) against the unfused path, bitwise: addRelu against float64 and
// against add then relu (values and gradients, f32 and f16, awkward sizes), multi-tensor Adam against one
// dispatch per parameter (awkward sizes, a parameter without a gradient, several dispatches
// per step, loss scaling's gated variant with a skipped step), and the quick model trained 3
// steps both ways (losses, weights and Adam moments). Fused, a step makes fewer dispatches.
import t, { type Test } from 'tap';
import { gpu } from './helpers.js';
import { adamGroupSize, adamGroups, adamMultiLaunch } from '../engine/adam_multi.js';
import { backward } from '../engine/autograd.js';
import { castTo } from '../engine/cast.js';
import * as E from '../engine/elementwise.js';
import { withFlags } from '../engine/flags.js';
import { LossScaler } from '../engine/loss_scale.js';
import { Adam } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { sum } from '../engine/reduce.js';
import { type Tensor, keep, tensor, tidy } from '../engine/tensor.js';
import { VqVae } from '../model/vqvae.js';

const r = await gpu(t);

/** The f32 bits of each array, for bitwise comparisons that treat NaN and -0 exactly. */
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Parameters and Adam moments as bits, by name. */
async function snapshot(params: Tensor[], opt: Adam): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [i, p] of params.entries()) out.set(`param ${i}`, bits((await p.read()) as Float32Array));
  for (const [i, s] of (await opt.state()).params.entries()) {
    if (!s) continue;
    out.set(`m ${i}`, bits(s.m));
    out.set(`v ${i}`, bits(s.v));
  }
  return out;
}

function differing(t: Test, got: Map<string, number[]>, want: Map<string, number[]>, label: string): void {
  t.same([...got.keys()], [...want.keys()], `${label}: the same tensors`);
  const diff = [...want].filter(([k, w]) => JSON.stringify(got.get(k)) !== JSON.stringify(w)).map(([k]) => k);
  t.same(diff, [], `${label}: all ${want.size} parameters and moments bitwise equal`);
}

t.test('the plan: parameters per dispatch from the storage-buffer limit, in consecutive groups', async (t) => {
  t.equal(adamGroupSize(8, false), 1);
  t.equal(adamGroupSize(16, false), 3);
  t.equal(adamGroupSize(16, true), 3);
  t.equal(adamGroupSize(17, true), 3);
  t.equal(adamGroupSize(18, true), 4);
  t.equal(adamGroupSize(1 << 20, false), 32);
  t.throws(() => adamGroupSize(4, false), /too few for one parameter/);
  t.same(adamGroups([0, 1, 2, 3, 4, 5, 6], 3), [[0, 1, 2], [3, 4, 5], [6]]);
  t.same(adamGroups([], 3), []);
  // (n, index, first workgroup, end workgroup) per parameter after 8 words of constants
  const launch = adamMultiLaunch([{ n: 1, index: 0 }, { n: 0, index: 4 }, { n: 257, index: 7 }], { one_minus_beta1: 0.1, beta2: 0.999, one_minus_beta2: 0.001, eps: 1e-8, weight_decay: 0 });
  t.same(Array.from(launch.params.slice(8)), [1, 0, 0, 1, 0, 4, 1, 1, 257, 7, 1, 3], 'the workgroup table (an empty parameter owns none)');
  t.equal(launch.workgroups, 3);
});

// 40 parameters: more than one dispatch's worth on any device (32 at most per dispatch).
const SIZES = [1, 3, 1027, 5, 0, 256, 257, ...Array.from({ length: 33 }, (_, i) => 1 + ((i * 37) % 300))];

/** 4 Adam steps (through a LossScaler when `scaled`), returning the parameters and moments. */
async function trainAdam(t: Test, fuse: boolean, opts: { weightDecay: number; scaled: boolean }): Promise<Map<string, number[]>> {
  return withFlags({ fuse }, async () => {
    const rng = new Rng(5);
    const params = SIZES.map((n) => tensor(rng.uniformArray(n, -1, 1), [n]).requireGrad());
    const opt = new Adam(params, { lr: 1e-2, betas: [0.8, 0.99], weightDecay: opts.weightDecay });
    const scaler = opts.scaled ? new LossScaler({ initScale: 2 ** 10, growthInterval: 2 }) : null;
    for (let step = 0; step < 4; step++) {
      params.forEach((p, i) => {
        p.grad?.dispose();
        // parameter 3 has no gradient on step 1 and parameter 10 never has one
        if ((i === 3 && step === 1) || i === 10) return void (p.grad = null);
        const g = rng.uniformArray(p.size, -3, 3).map((v) => v * 10 ** -rng.int(4) * (scaler ? 2 ** 10 : 1));
        if (scaler && step === 2 && i === 2) g[7] = Infinity; // a skipped step
        p.grad = tensor(g, p.shape);
      });
      opt.lr = 1e-2 / (step + 1);
      if (scaler) scaler.step(opt);
      else opt.step();
    }
    const snap = await snapshot(params, opt);
    if (scaler) t.equal((await scaler.read()).skippedSteps, 1, `fuse ${fuse}: the step with an inf was skipped`);
    for (const p of params) {
      p.grad?.dispose();
      p.dispose();
    }
    opt.dispose();
    scaler?.dispose();
    return snap;
  });
}

t.test('multi-tensor Adam = one dispatch per parameter, bitwise', async (t) => {
  for (const weightDecay of [0, 0.05]) {
    differing(t, await trainAdam(t, true, { weightDecay, scaled: false }), await trainAdam(t, false, { weightDecay, scaled: false }), `weight decay ${weightDecay}`);
  }
});

t.test('multi-tensor Adam gated by loss scaling = the per-parameter gated kernel, bitwise', async (t) => {
  differing(t, await trainAdam(t, true, { weightDecay: 0.05, scaled: true }), await trainAdam(t, false, { weightDecay: 0.05, scaled: true }), 'loss-scaled');
});

t.test('multi-tensor Adam: one dispatch for up to the device\'s group size', async (t) => {
  const params = [tensor([1, 2, 3], [3]).requireGrad(), tensor([4], [1]).requireGrad()];
  const opt = new Adam(params);
  for (const p of params) p.grad = tensor(new Float32Array(p.size).fill(0.5), p.shape);
  opt.step(); // the moments are made
  await r.sync();
  for (const [fuse, want] of [[true, 1], [false, 2]] as const) {
    const d0 = r.dispatchCount;
    withFlags({ fuse }, () => opt.step());
    t.equal(r.dispatchCount - d0, want, `fuse ${fuse}: ${want} dispatch(es)`);
  }
  await r.sync();
  for (const p of params) {
    p.grad?.dispose();
    p.dispose();
  }
  opt.dispose();
});

/** The quick preset's model trained 3 steps: losses, every weight and Adam moment, and the dispatches of the last step. */
async function trainQuick(fuse: boolean): Promise<{ state: Map<string, number[]>; dispatches: number }> {
  return withFlags({ fuse }, async () => {
    const B = 2;
    const S = 32;
    const rng = new Rng(11);
    const model = new VqVae({ hidden: 64, residualHidden: 32, codebookSize: 64, embeddingDim: 16 }, { seed: 4 });
    const opt = new Adam(model.parameters(), { lr: 2e-3 });
    const x = keep(tensor(rng.uniformArray(B * 3 * S * S, -0.5, 0.5), [B, 3, S, S]));
    const losses: number[] = [];
    let dispatches = 0;
    for (let s = 0; s < 3; s++) {
      const d0 = r.dispatchCount;
      const loss = tidy(() => {
        const o = model.forward(x, { train: true });
        backward(o.loss);
        return o.loss;
      });
      opt.step();
      opt.zeroGrad();
      dispatches = r.dispatchCount - d0;
      losses.push(await loss.item());
      loss.dispose();
    }
    const state = await snapshot(model.parameters(), opt);
    state.set('losses', bits(Float32Array.from(losses)));
    x.dispose();
    opt.dispose();
    model.dispose();
    return { state, dispatches };
  });
}

t.test('the quick model trained 3 steps fused = unfused, bitwise, in fewer dispatches', async (t) => {
  const fused = await trainQuick(true);
  const unfused = await trainQuick(false);
  differing(t, fused.state, unfused.state, 'quick model');
  t.ok(fused.dispatches < unfused.dispatches, `dispatches per step: ${fused.dispatches} fused < ${unfused.dispatches} unfused`);
});

/** addRelu's outputs and the gradients of sum(y * wy + z * wz) for a and b, as bits. */
function addReluCase(fuse: boolean, a0: Float32Array, b0: Float32Array, shapeA: number[], shapeB: number[], dtype: 'f32' | 'f16') {
  return withFlags({ fuse }, () =>
    tidy(() => {
      const a = tensor(a0, shapeA).requireGrad();
      const b = tensor(b0, shapeB).requireGrad();
      const [y, z] = E.addRelu(castTo(a, dtype), castTo(b, dtype));
      const wy = E.scale(E.onesLike(y), 0.5);
      const wz = E.addScalar(E.onesLike(z), 2);
      backward(sum(castTo(E.add(E.mul(y, wy), E.mul(z, wz)), 'f32')));
      const out = [castTo(y, 'f32'), castTo(z, 'f32'), a.grad!, b.grad!];
      a.grad = b.grad = null;
      return out;
    }),
  );
}

t.test('addRelu: a + b and relu(a + b), values and gradients, against float64 and bitwise against add then relu', async (t) => {
  const rng = new Rng(21);
  for (const n of [1, 3, 5, 1027]) {
    const a0 = rng.uniformArray(n, -1, 1);
    const b0 = rng.uniformArray(n, -1, 1);
    if (n > 3) b0[2] = -a0[2]; // a sum of exactly 0: relu's gradient there is 0
    for (const dtype of ['f32', 'f16'] as const) {
      const fused = addReluCase(true, a0, b0, [n], [n], dtype);
      const unfused = addReluCase(false, a0, b0, [n], [n], dtype);
      const got = await Promise.all(fused.map(async (x) => bits((await x.read()) as Float32Array)));
      const want = await Promise.all(unfused.map(async (x) => bits((await x.read()) as Float32Array)));
      t.same(got, want, `n ${n}, ${dtype}: y, z and both gradients bitwise equal to add then relu`);
      if (dtype === 'f32') {
        // one f32 rounding each: y = a + b, the gradient 0.5 + (y > 0 ? 3 : 0)
        const y = a0.map((v, i) => Math.fround(v + b0[i]));
        const wantF = [y, y.map((v) => Math.max(v, 0)), y.map((v) => (v > 0 ? 3.5 : 0.5)), y.map((v) => (v > 0 ? 3.5 : 0.5))];
        t.same(got, wantF.map((x) => bits(Float32Array.from(x))), `n ${n}: against float64 rounded once`);
      }
      for (const x of [...fused, ...unfused]) x.dispose();
    }
  }
  // shapes that broadcast take add then relu
  const [y, z] = E.addRelu(tensor([1, -2, 3, -4, 5, -6], [2, 3]), tensor([1, 1, -10], [3]));
  t.same(Array.from((await y.read()) as Float32Array), [2, -1, -7, -3, 6, -16], 'broadcast: a + b');
  t.same(Array.from((await z.read()) as Float32Array), [2, 0, 0, 0, 6, 0], 'broadcast: relu(a + b)');
  y.dispose();
  z.dispose();
});
