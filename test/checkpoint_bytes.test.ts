// Checkpoints as bytes (what a web page opens from a picked file and offers for download):
// encodeCheckpoint gives the bytes saveCheckpoint writes, bytes -> model -> bytes is identical,
// loading from bytes gives bitwise the weights and errors loading from files gives, and a
// hostile blob is refused before any GPU memory is allocated.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertBitwise, gpu } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { Adam } from '../engine/optim.js';
import { Rng } from '../engine/random.js';
import { rt } from '../engine/runtime.js';
import { memory, randn, tidy } from '../engine/tensor.js';
import {
  CheckpointError,
  checkpointConfigFromBytes,
  encodeCheckpoint,
  loadCheckpointBytes,
  modelFromCheckpointBytes,
  stateLayout,
} from '../model/checkpoint.js';
import { checkpointConfig, loadCheckpoint, modelFromCheckpoint, modelPath, saveCheckpoint, trainPath } from '../model/checkpoint_files.js';
import { decodeSafetensors, encodeSafetensors, type WriteEntry } from '../model/safetensors.js';
import { VqVae } from '../model/vqvae.js';

await gpu(t);
const dir = mkdtempSync(join(tmpdir(), 'vq-ckbytes-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const tiny = { hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8 };

/** A file's bytes as a fresh ArrayBuffer, as File.arrayBuffer() gives a page. */
function arrayBufferOf(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

async function weights(m: VqVae): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, p] of m.state) out.set(n, (await p.read()) as Float32Array);
  return out;
}

async function assertSameWeights(t: Test, a: VqVae, b: VqVae, msg: string): Promise<void> {
  const wa = await weights(a);
  const wb = await weights(b);
  t.same([...wb.keys()], [...wa.keys()], `${msg}: same names`);
  for (const [n, v] of wa) assertBitwise(t, wb.get(n)!, v, `${msg}: ${n}`);
}

/** A model and its Adam after two training steps (so moments, EMA state and RNGs are non-trivial). */
function trained(ema: boolean, seed: number): { model: VqVae; opt: Adam } {
  const model = new VqVae({ ...tiny, ema }, { seed });
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = randn([2, 3, 32, 32], { std: 0.3, rng: new Rng(seed + 1) });
  for (let i = 0; i < 2; i++) {
    tidy(() => backward(model.forward(x, { train: true }).loss));
    opt.step();
    opt.zeroGrad();
  }
  x.dispose();
  return { model, opt };
}

/** GPU buffers the pool hands out while `fn` runs (every tensor's storage comes from the pool). */
async function countAcquires<T>(fn: () => Promise<T>): Promise<{ acquires: number; result: T }> {
  const pool = rt().pool;
  const acquire = pool.acquire;
  let acquires = 0;
  pool.acquire = (bytes, label) => {
    acquires++;
    return acquire.call(pool, bytes, label);
  };
  try {
    const result = await fn();
    return { acquires, result };
  } finally {
    pool.acquire = acquire;
  }
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

t.test('stateLayout(config) is the names and shapes of a model built from config', async (t) => {
  for (const ema of [false, true]) {
    const m = new VqVae({ ...tiny, ema });
    t.same(
      [...stateLayout(m.config)].map(([n, s]) => [n, [...s]]),
      [...m.state].map(([n, p]) => [n, [...p.shape]]),
      `ema ${ema}`,
    );
    m.dispose();
  }
});

t.test('encodeCheckpoint gives the bytes saveCheckpoint writes', async (t) => {
  const { model, opt } = trained(true, 20);
  const base = join(dir, 'same');
  await saveCheckpoint(base, model, { step: 3, optimizer: opt, train: { note: 'x' } });
  const saved = readFileSync(modelPath(base));
  const id = decodeSafetensors(saved).metadata['vqvae.id'];
  t.match(id, /^[0-9a-f]{16}$/, 'a 16-hex-digit random id');
  const bytes = await encodeCheckpoint(model, { step: 3, optimizer: opt, train: { note: 'x' }, id });
  t.ok(Buffer.from(bytes.model).equals(saved), 'model bytes = model file');
  t.ok(bytes.train && Buffer.from(bytes.train).equals(readFileSync(trainPath(base))), 'train bytes = train file');
  const modelOnly = await encodeCheckpoint(model, { step: 3 });
  t.equal(modelOnly.train, undefined, 'no train blob without optimiser or trainer state');
  t.not(decodeSafetensors(modelOnly.model).metadata['vqvae.id'], id, 'a fresh random id by default');
  model.dispose();
  opt.dispose();
});

t.test('bytes -> model -> bytes is identical (model and train blobs)', async (t) => {
  for (const ema of [false, true]) {
    const { model, opt } = trained(ema, 30);
    const first = await encodeCheckpoint(model, { step: 2, optimizer: opt, train: { note: 'hi', rng: [1, 2, 3, 4] } });
    const id = decodeSafetensors(first.model).metadata['vqvae.id'];

    // a page: pick two files, build the model from them, train on, download again
    const { model: m2, info } = await modelFromCheckpointBytes(first.model.slice().buffer, 'picked.safetensors', { trainBytes: first.train!.slice().buffer });
    t.equal(info.step, 2);
    t.same(info.train, { note: 'hi', rng: [1, 2, 3, 4] });
    t.same(info.config, model.config);
    const opt2 = new Adam(m2.parameters(), { lr: 5 });
    await loadCheckpointBytes(first.model, m2, { trainBytes: first.train, optimizer: opt2 });
    const again = await encodeCheckpoint(m2, { step: info.step, optimizer: opt2, train: info.train!, id });
    t.ok(Buffer.from(again.model).equals(Buffer.from(first.model)), `model blob identical (ema ${ema})`);
    t.ok(Buffer.from(again.train!).equals(Buffer.from(first.train!)), `train blob identical (ema ${ema})`);
    await assertSameWeights(t, model, m2, `ema ${ema}`);
    model.dispose();
    m2.dispose();
  }
});

t.test('a checkpoint saved to files loads from its bytes exactly as from the files', async (t) => {
  const { model, opt } = trained(true, 40);
  const base = join(dir, 'files');
  await saveCheckpoint(base, model, { step: 5, optimizer: opt, train: { epoch: 1 } });
  const modelBytes = arrayBufferOf(modelPath(base));
  const trainBytes = arrayBufferOf(trainPath(base));

  t.same(checkpointConfigFromBytes(modelBytes, 'picked.safetensors'), checkpointConfig(base), 'same config');

  const a = new VqVae({ ...tiny, ema: true }, { seed: 98 });
  const optA = new Adam(a.parameters(), { lr: 5 });
  const infoA = await loadCheckpoint(base, a, { optimizer: optA });
  const b = new VqVae({ ...tiny, ema: true }, { seed: 99 });
  const optB = new Adam(b.parameters(), { lr: 7 });
  const infoB = await loadCheckpointBytes(modelBytes, b, { trainBytes, optimizer: optB, source: 'picked.safetensors' });
  t.same(infoB, infoA, 'same info');
  await assertSameWeights(t, b, a, 'loadCheckpointBytes = loadCheckpoint');
  await assertSameWeights(t, b, model, 'and = the saved model');
  t.same(await optB.state(), await optA.state(), 'same Adam state');
  t.equal(b.ema!.step, a.ema!.step, 'same EMA step');
  t.same(b.ema!.rng.getState(), a.ema!.rng.getState(), 'same EMA RNG');

  const fromFiles = await modelFromCheckpoint(base);
  const fromBytes = await modelFromCheckpointBytes(modelBytes, 'picked.safetensors', { trainBytes });
  t.same(fromBytes.info, fromFiles.info, 'modelFromCheckpointBytes info = modelFromCheckpoint info');
  await assertSameWeights(t, fromBytes.model, fromFiles.model, 'modelFromCheckpointBytes = modelFromCheckpoint');
  for (const m of [model, a, b, fromFiles.model, fromBytes.model]) m.dispose();
});

t.test('loading bad bytes gives the error loading the file gives, and leaves the model untouched', async (t) => {
  const m = new VqVae(tiny, { seed: 50 });
  const good = await encodeCheckpoint(m, { step: 7, train: { a: 1 } });
  const parsed = decodeSafetensors(good.model);
  const entries = (): Record<string, WriteEntry> =>
    Object.fromEntries([...parsed.tensors].map(([n, st]) => [n, { dtype: st.dtype, shape: st.shape, data: new Float32Array(st.bytes.slice().buffer) }]));
  const hostileHeader = new Uint8Array(16);
  new DataView(hostileHeader.buffer).setBigUint64(0, 0xffffffffffffn, true);
  const withNaN = entries();
  const d = new Float32Array(withNaN['pre_vq_conv.bias'].data as Float32Array);
  d[3] = NaN;
  withNaN['pre_vq_conv.bias'] = { ...withNaN['pre_vq_conv.bias'], data: d };
  const missing = entries();
  delete missing['pre_vq_conv.bias'];
  const cases: [string, Uint8Array, Uint8Array | undefined, RegExp][] = [
    ['hostile header', hostileHeader, undefined, /header length \d+ exceeds/],
    ['truncated', good.model.subarray(0, good.model.byteLength - 100), undefined, /reach past the data section/],
    ['missing', encodeSafetensors(missing, parsed.metadata), undefined, /missing: pre_vq_conv.bias/],
    ['nan', encodeSafetensors(withNaN, parsed.metadata), undefined, /'pre_vq_conv.bias' holds a non-finite value \(NaN\) at element 3/],
    ['arch', encodeSafetensors(entries(), { ...parsed.metadata, 'vqvae.config': JSON.stringify({ ...m.config, codebookSize: 32 }) }), undefined, /differs from this one in codebookSize \(file 32, model 16\)/],
    ['config', encodeSafetensors(entries(), { ...parsed.metadata, 'vqvae.config': '{not json' }), undefined, /'vqvae.config' is not valid JSON/],
    ['step', encodeSafetensors(entries(), { ...parsed.metadata, 'vqvae.step': '-1' }), undefined, /'vqvae.step' is not a non-negative integer/],
    ['mixed', good.model, encodeSafetensors({}, { 'vqvae.id': 'someone-else' }), /belongs to another checkpoint/],
    ['hostile train header', good.model, hostileHeader, /\.train\.safetensors: header length \d+ exceeds/],
    ['train not an object', good.model, encodeSafetensors({}, { 'vqvae.id': parsed.metadata['vqvae.id'], 'vqvae.train': '[1]' }), /'vqvae.train' is not a JSON object/],
  ];
  const target = new VqVae(tiny, { seed: 51 });
  const before = await weights(target);
  for (const [what, modelBytes, trainBytes, re] of cases) {
    const base = join(dir, `bad-${what.replace(/\W+/g, '_')}`);
    writeFileSync(modelPath(base), modelBytes);
    if (trainBytes) writeFileSync(trainPath(base), trainBytes);
    const fromFile = await rejection(loadCheckpoint(base, target));
    const fromBytes = await rejection(
      loadCheckpointBytes(modelBytes.slice().buffer, target, { trainBytes: trainBytes?.slice().buffer, source: modelPath(base), trainSource: trainPath(base) }),
    );
    t.ok(fromBytes instanceof CheckpointError, `${what}: a CheckpointError`);
    t.match(fromBytes.message, re, what);
    t.equal(fromBytes.message, fromFile.message, `${what}: bytes error = file error`);
  }
  const err = await rejection(loadCheckpointBytes(hostileHeader, target, { source: 'picked.safetensors' }));
  t.match(err.message, /^picked\.safetensors: header length/, 'the source names the picked file');
  const err2 = await rejection(loadCheckpointBytes(good.model, target, { trainBytes: new ArrayBuffer(0), source: 'picked.safetensors' }));
  t.match(err2.message, /^picked\.safetensors \(train state\): truncated/, 'the train blob is named after the model blob by default');
  const after = await weights(target);
  for (const [n, v] of before) assertBitwise(t, after.get(n)!, v, `untouched after every failed load: ${n}`);
  m.dispose();
  target.dispose();
});

t.test('modelFromCheckpointBytes refuses a hostile blob before allocating any GPU memory', async (t) => {
  const m = new VqVae(tiny, { seed: 60 });
  const good = await encodeCheckpoint(m, { step: 1, train: {} });
  const parsed = decodeSafetensors(good.model);
  const entries = (): Record<string, WriteEntry> =>
    Object.fromEntries([...parsed.tensors].map(([n, st]) => [n, { dtype: st.dtype, shape: st.shape, data: new Float32Array(st.bytes.slice().buffer) }]));
  m.dispose();
  const hostileHeader = new Uint8Array(16);
  new DataView(hostileHeader.buffer).setBigUint64(0, 1n << 62n, true);
  const withConfig = (config: object) => encodeSafetensors(entries(), { ...parsed.metadata, 'vqvae.config': JSON.stringify(config) });
  const cases: [string, Uint8Array, Uint8Array | undefined, RegExp][] = [
    ['hostile header length', hostileHeader, undefined, /header length \d+ exceeds/],
    ['truncated', good.model.subarray(0, 40), undefined, /truncated/],
    ['bad JSON header', (() => {
      const b = good.model.slice();
      b[8] = 0x5b; // '[' where '{' was
      return b;
    })(), undefined, /not valid UTF-8 JSON|not a JSON object/],
    // no config (a PyTorch-written file): the architecture is read off the shapes, which needs the codebook
    ['no config, no codebook', encodeSafetensors(Object.fromEntries(Object.entries(entries()).filter(([n]) => n !== 'vq_vae.embedding.weight')), { format: 'pt' }), undefined, /cannot tell the architecture: no 'vq_vae.embedding.weight'/],
    ['invalid config', withConfig({ ...tiny, hidden: -3 }), undefined, /config.hidden must be a positive integer/],
    // a config asking for ~40 GB of weights, with the tiny model's tensors: names and shapes
    // are checked against the config before anything is allocated
    ['huge config, small tensors', withConfig({ ...tiny, hidden: 100_000 }), undefined, /'encoder.conv1.weight' has shape \[8, 3, 4, 4\], the model needs \[50000, 3, 4, 4\]/],
    ['ema config, no ema tensors', withConfig({ ...tiny, ema: true }), undefined, /missing: vq_vae.ema_cluster_size, vq_vae.ema_w/],
    ['hostile train header', good.model, hostileHeader, /picked\.train\.safetensors: header length \d+ exceeds/],
  ];
  for (const [what, modelBytes, trainBytes, re] of cases) {
    const before = memory();
    const { acquires, result: err } = await countAcquires(() =>
      rejection(modelFromCheckpointBytes(modelBytes.slice().buffer, 'picked.safetensors', { trainBytes: trainBytes?.slice().buffer, trainSource: 'picked.train.safetensors' })),
    );
    t.ok(err instanceof CheckpointError, `${what}: a CheckpointError`);
    t.match(err.message, re, what);
    t.equal(acquires, 0, `${what}: no GPU buffer acquired`);
    t.same(memory(), before, `${what}: GPU memory (live and pooled) unchanged`);
  }

  // an error found only by reading the values (after allocation): the model is disposed, so
  // nothing stays live (and the counters do see the allocation)
  const withNaN = entries();
  const d = new Float32Array(withNaN['decoder.conv1.bias'].data as Float32Array);
  d[0] = Infinity;
  withNaN['decoder.conv1.bias'] = { ...withNaN['decoder.conv1.bias'], data: d };
  const before = memory();
  const { acquires, result: err } = await countAcquires(() => rejection(modelFromCheckpointBytes(encodeSafetensors(withNaN, parsed.metadata), 'picked.safetensors')));
  t.match(err.message, /^picked\.safetensors: 'decoder.conv1.bias' holds a non-finite value \(Infinity\) at element 0/);
  t.ok(acquires > 0, `the model was allocated (${acquires} buffers)`);
  const after = memory();
  t.equal(after.liveBytes, before.liveBytes, 'disposed: live bytes back where they were');
  t.equal(after.liveBuffers, before.liveBuffers, 'disposed: live buffers back where they were');
});
