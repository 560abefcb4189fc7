// The VQ-VAE model and its checkpoints: parameter count and names, shapes, gradients reaching
// every parameter, a bit-exact checkpoint round trip, every malformed-checkpoint case, and
// (when torch is installed) PyTorch loading our file and we loading PyTorch's.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { type TorchPython, torchTest } from './torch/python.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { Adam } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { rt } from '../engine/runtime.js';
import { randn, tensor, tidy } from '../engine/tensor.js';
import { resolveConfig } from '../model/config.js';
import { countParams, paramSpecs } from '../model/params.js';
import { VqVae } from '../model/vqvae.js';
import { CheckpointError } from '../model/checkpoint.js';
import { loadCheckpoint, modelFromCheckpoint, modelPath, saveCheckpoint, trainPath } from '../model/checkpoint_files.js';
import { encodeSafetensors } from '../model/safetensors.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors_file.js';

await gpu(t);
const dir = mkdtempSync(join(tmpdir(), 'vq-model-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const tiny = { hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8 };

const SEED_NAMES = [
  '_encoder._conv_1.weight', '_encoder._conv_1.bias', '_encoder._conv_2.weight', '_encoder._conv_2.bias',
  '_encoder._conv_3.weight', '_encoder._conv_3.bias',
  '_encoder._residual_stack._layers.0._block.1.weight', '_encoder._residual_stack._layers.0._block.3.weight',
  '_encoder._residual_stack._layers.1._block.1.weight', '_encoder._residual_stack._layers.1._block.3.weight',
  '_pre_vq_conv.weight', '_pre_vq_conv.bias', '_vq_vae._embedding.weight',
  '_decoder._conv_1.weight', '_decoder._conv_1.bias',
  '_decoder._residual_stack._layers.0._block.1.weight', '_decoder._residual_stack._layers.0._block.3.weight',
  '_decoder._residual_stack._layers.1._block.1.weight', '_decoder._residual_stack._layers.1._block.3.weight',
  '_decoder._conv_trans_1.weight', '_decoder._conv_trans_1.bias', '_decoder._conv_trans_2.weight', '_decoder._conv_trans_2.bias',
];

t.test('the seed model: 694,851 parameters under the seed state_dict names', async (t) => {
  const c = resolveConfig();
  t.equal(countParams(c), 694851);
  t.same(paramSpecs(c).map((s) => s.name), SEED_NAMES);
  const shapes = Object.fromEntries(paramSpecs(c).map((s) => [s.name, s.shape]));
  t.same(shapes['_encoder._conv_1.weight'], [64, 3, 4, 4]);
  t.same(shapes['_decoder._conv_trans_1.weight'], [128, 64, 4, 4], 'ConvTranspose2d weight is [in, out, kh, kw]');
  t.same(shapes['_vq_vae._embedding.weight'], [512, 64]);
  t.equal(countParams(resolveConfig({ codebookSize: 128 })), 694851 - 384 * 64);
  t.throws(() => resolveConfig({ hidden: 0 }), /config.hidden must be a positive integer/);
  t.throws(() => resolveConfig({ beta: NaN }), /config.beta/);
});

t.test('PyTorch default initialisation bounds', async (t) => {
  const m = new VqVae({}, { seed: 3 });
  const w = (await m.state.get('_decoder._conv_trans_2.weight')!.read()) as Float32Array; // [64, 3, 4, 4], fan_in 3*16
  const bound = 1 / Math.sqrt(48);
  t.ok(Math.max(...w.map(Math.abs)) <= bound && Math.max(...w.map(Math.abs)) > 0.9 * bound, 'convT fan_in from dim 1');
  const e = (await m.codebook.read()) as Float32Array;
  t.ok(Math.max(...e.map(Math.abs)) <= 1 / 512, 'codebook U(-1/K, 1/K)');
  m.dispose();
});

t.test('forward shapes, losses and gradients into every parameter', async (t) => {
  const m = new VqVae(tiny, { seed: 1 });
  const x = randn([2, 3, 64, 64], { std: 0.3, rng: new Rng(2) });
  const out = m.forward(x, { train: true });
  t.same(out.xHat.shape, [2, 3, 64, 64]);
  t.same(out.indices.shape, [2 * 16 * 16]);
  t.same(out.loss.shape, []);
  const [recon, cb, commit, loss, ppl] = await Promise.all([out.recon.item(), out.codebookLoss.item(), out.commitmentLoss.item(), out.loss.item(), out.perplexity.item()]);
  t.ok(Math.abs(loss - (recon + cb + commit)) < 1e-6 * Math.max(1, loss), 'loss = recon + codebook + commitment');
  t.ok(Math.abs(commit - 1.25 * cb) < 1e-5 * Math.max(1e-3, cb), 'commitment = beta * codebook term in value');
  t.ok(ppl >= 1 && ppl <= 16, `perplexity ${ppl}`);
  backward(out.loss);
  for (const [name, p] of m.state) {
    t.ok(p.grad, `${name} has a gradient`);
    const g = (await p.grad!.read()) as Float32Array;
    t.ok(g.some((v) => v !== 0) && g.every(Number.isFinite), `${name} gradient is finite and non-zero`);
  }
  const codes = m.encode(x);
  t.same(codes.shape, [2, 16, 16]);
  const back = m.decode(codes);
  const a = (await back.read()) as Float32Array;
  const b = (await out.xHat.read()) as Float32Array;
  t.ok(a.every((v, i) => Math.abs(v - b[i]) <= 1e-6), 'decode(encode(x)) is the forward reconstruction');
  t.throws(() => m.forward(randn([2, 1, 64, 64])), /expected images \[B, 3, H, W\] .* got Tensor #\d+ f32\[2, 1, 64, 64\]/);
  t.throws(() => m.decode(randn([2, 16, 16])), /expected integer codes/);
  m.dispose();
});

async function snapshot(m: VqVae): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const [n, p] of m.state) out.set(n, new Uint8Array(((await p.read()) as Float32Array).buffer));
  return out;
}

t.test('checkpoint round trip is bit-exact, optimiser included', async (t) => {
  for (const ema of [false, true]) {
    const m = new VqVae({ ...tiny, ema }, { seed: 4 });
    const opt = new Adam(m.parameters(), { lr: 1e-3 });
    const x = randn([2, 3, 64, 64], { std: 0.3, rng: new Rng(5) });
    for (let i = 0; i < 2; i++) {
      tidy(() => {
        const o = m.forward(x, { train: true });
        backward(o.loss);
      });
      opt.step();
      opt.zeroGrad();
    }
    const base = join(dir, `rt-${ema}`);
    await saveCheckpoint(base, m, { step: 2, optimizer: opt, train: { note: 'hi', rng: [1, 2, 3, 4] } });
    const m2 = new VqVae({ ...tiny, ema }, { seed: 99 });
    const opt2 = new Adam(m2.parameters(), { lr: 5 });
    const info = await loadCheckpoint(base, m2, { optimizer: opt2 });
    t.equal(info.step, 2);
    t.same(info.train, { note: 'hi', rng: [1, 2, 3, 4] });
    t.equal(info.config.ema, ema);
    t.same(await snapshot(m2), await snapshot(m), `weights bit-exact (ema ${ema})`);
    const s1 = await opt.state();
    const s2 = await opt2.state();
    t.same(s2, s1, 'Adam state restored');
    if (ema) t.equal(m2.ema!.step, m.ema!.step, 'EMA step restored');
    // one more step on both gives the same weights
    for (const [mm, oo] of [[m, opt], [m2, opt2]] as const) {
      tidy(() => backward(mm.forward(x, { train: true }).loss));
      oo.step();
      oo.zeroGrad();
    }
    t.same(await snapshot(m2), await snapshot(m), 'training continues identically');
    const { model } = await modelFromCheckpoint(base);
    t.same(model.config, m.config);
    model.dispose();
    m.dispose();
    m2.dispose();
  }
});

t.test('malformed checkpoints get an error naming the problem and leave the model untouched', async (t) => {
  const m = new VqVae(tiny, { seed: 6 });
  const base = join(dir, 'good');
  await saveCheckpoint(base, m, { step: 7 });
  const good = readSafetensors(modelPath(base));
  const entries = () =>
    Object.fromEntries([...good.tensors].map(([n, st]) => [n, { dtype: st.dtype, shape: st.shape, data: new Float32Array(st.bytes.slice().buffer) }]));
  const target = new VqVae(tiny, { seed: 7 });
  const before = await snapshot(target);
  const write = (name: string, e: ReturnType<typeof entries>, meta = good.metadata) => {
    const b = join(dir, name);
    writeSafetensors(modelPath(b), e as any, meta);
    return b;
  };
  const cases: [string, string, RegExp][] = [];
  {
    const e = entries();
    delete e['pre_vq_conv.bias'];
    cases.push(['missing', write('missing', e), /missing: pre_vq_conv.bias/]);
  }
  {
    const e = entries();
    e['extra.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    cases.push(['unexpected', write('unexpected', e), /unexpected: extra.weight/]);
  }
  {
    const e = entries();
    e['pre_vq_conv.bias'] = { dtype: 'F32', shape: [9], data: new Float32Array(9) };
    cases.push(['shape', write('shape', e), /'pre_vq_conv.bias' has shape \[9\], the model needs \[8\]/]);
  }
  {
    const e = entries();
    const d = new Float32Array(e['pre_vq_conv.bias'].data);
    d[3] = NaN;
    e['pre_vq_conv.bias'] = { ...e['pre_vq_conv.bias'], data: d };
    cases.push(['nan', write('nan', e), /'pre_vq_conv.bias' holds a non-finite value \(NaN\) at element 3/]);
  }
  cases.push(['arch', write('arch', entries(), { ...good.metadata, 'vqvae.config': JSON.stringify({ ...JSON.parse(good.metadata['vqvae.config']), codebookSize: 32 }) }), /differs from this one in codebookSize \(file 32, model 16\)/]);
  cases.push(['config', write('config', entries(), { ...good.metadata, 'vqvae.config': '{not json' }), /'vqvae.config' is not valid JSON/]);
  {
    const b = join(dir, 'truncated');
    const bytes = readFileSync(modelPath(base));
    writeFileSync(modelPath(b), bytes.subarray(0, bytes.length - 100));
    cases.push(['truncated', b, /reach past the data section/]);
  }
  {
    const b = join(dir, 'hostile');
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 0xffffffffffffn, true);
    writeFileSync(modelPath(b), bytes);
    cases.push(['hostile', b, /header length \d+ exceeds/]);
  }
  {
    const b = write('mixed', entries());
    writeFileSync(trainPath(b), encodeSafetensors({}, { 'vqvae.id': 'someone-else' }));
    cases.push(['mixed', b, /belongs to another checkpoint/]);
  }
  cases.push(['absent', join(dir, 'nope'), /no such checkpoint file/]);
  for (const [what, b, re] of cases) {
    await t.rejects(loadCheckpoint(b, target), re, what);
  }
  await t.rejects(loadCheckpoint(join(dir, 'nope'), target), CheckpointError);
  t.same(await snapshot(target), before, 'the model is untouched after every failed load');
  m.dispose();
  target.dispose();
});

const refScript = resolve(import.meta.dirname, 'torch/vqvae_ref.py');

// both naming schemes: PyTorch builds the module tree the file's names call for
torchTest(t, 'PyTorch loads our checkpoint (strict) and reconstructs within 1e-4; we load PyTorch\'s', async (t: Test, { python }: TorchPython) => {
  const m = new VqVae({}, { seed: 11 });
  rt().overwrite(m.codebook.buffer, new Rng(12).normalArray(512 * 64)); // well-separated codes: no near-ties
  const base = join(dir, 'torch');
  await saveCheckpoint(base, m, { step: 0, names: 'zalando' });
  const xData = new Rng(13).uniformArray(2 * 3 * 64 * 64, -0.5, 0.5);
  const x = tensor(xData, [2, 3, 64, 64]);
  const ours = m.forward(x);
  const oursX = (await ours.xHat.read()) as Float32Array;
  const inp = join(dir, 'x.bin');
  const out = join(dir, 'out.bin');
  writeFileSync(inp, xData);
  const py = spawnSync(python, [refScript, 'forward', modelPath(base), inp, out], { encoding: 'utf8', timeout: 120_000 });
  t.equal(py.status, 0, py.stderr);
  const theirs = new Float32Array(readFileSync(out).buffer.slice(0, oursX.length * 4));
  let worst = 0;
  for (let i = 0; i < oursX.length; i++) worst = Math.max(worst, Math.abs(oursX[i] - theirs[i]));
  t.ok(worst <= 1e-4, `max |ours - torch| = ${worst}`);

  const theirFile = join(dir, 'from-torch');
  const py2 = spawnSync(python, [refScript, 'save', modelPath(theirFile), '5'], { encoding: 'utf8', timeout: 120_000 });
  t.equal(py2.status, 0, py2.stderr);
  t.ok(existsSync(modelPath(theirFile)));
  const m2 = new VqVae({}, { seed: 0 });
  const info = await loadCheckpoint(theirFile, m2);
  t.equal(info.step, 0);
  t.equal(info.train, null);
  const mine = (await m2.forward(x).xHat.read()) as Float32Array;
  const py3 = spawnSync(python, [refScript, 'forward', modelPath(theirFile), inp, out], { encoding: 'utf8', timeout: 120_000 });
  t.equal(py3.status, 0, py3.stderr);
  const ref = new Float32Array(readFileSync(out).buffer.slice(0, mine.length * 4));
  let worst2 = 0;
  for (let i = 0; i < mine.length; i++) worst2 = Math.max(worst2, Math.abs(mine[i] - ref[i]));
  t.ok(worst2 <= 1e-4, `PyTorch-written weights: max |ours - torch| = ${worst2}`);
  m.dispose();
  m2.dispose();
});
