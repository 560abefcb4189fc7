// The engine core: device, tensors, seeded randomness, scopes, the buffer pool, batched
// dispatch, pipeline and bind-group caching and GPU error reporting.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { gpu } from './helpers.js';
import { Rng, manualSeed } from '../engine/random.js';
import { BufferPool, bucketSize } from '../engine/pool.js';
import { empty, full, keep, memory, ones, rand, randn, tensor, tidy, zeros } from '../engine/tensor.js';
import { VEC4_TEXTURE_WIDTH, type Kernel } from '../engine/runtime.js';
import { wgsl } from '../engine/shaders.js';
import { add } from '../engine/elementwise.js';
import { matmul } from '../engine/matmul.js';

const r = await gpu(t);

t.test('capabilities', async (t) => {
  t.type(r.caps.description, 'string');
  t.ok(r.caps.maxStorageBufferBindingSize >= 128 * 1024 * 1024, 'adapter storage binding limit requested');
  t.equal(typeof r.caps.isCpu, 'boolean');
});

t.test('tensors round-trip values in every dtype', async (t) => {
  const f = tensor([1.5, -2, 3e-7, 1e30], [2, 2]);
  t.same([...(await f.read())], [1.5, -2, Math.fround(3e-7), Math.fround(1e30)]);
  const i = tensor(new Int32Array([-7, 0, 2147483647]));
  t.same([...(await i.read())], [-7, 0, 2147483647]);
  t.equal(i.dtype, 'i32');
  const u = tensor([4294967295, 1], [2], 'u32');
  t.same([...(await u.read())], [4294967295, 1]);
  t.same([...(await full([3], -0.25).read())], [-0.25, -0.25, -0.25]);
  t.same([...(await full([2], -9, 'i32').read())], [-9, -9]);
  t.same([...(await zeros([5]).read())], [0, 0, 0, 0, 0]);
  t.same([...(await ones([1]).read())], [1]);
  t.equal(await tensor([42], []).item(), 42);
  const big = full([70000 * 256 + 3], 2); // more workgroups than one grid dimension holds
  const v = await big.read();
  t.equal(v[0], 2);
  t.equal(v[v.length - 1], 2);
  t.equal(v.length, 70000 * 256 + 3);
  for (const x of [f, i, u, big]) x.dispose();
});

t.test('bad shapes and data are refused with clear errors', async (t) => {
  t.throws(() => tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  t.throws(() => zeros([2, -1]), /Invalid shape \[2, -1\]/);
  t.throws(() => zeros([1.5]), /Invalid shape/);
});

t.test('seeded generators repeat exactly', async (t) => {
  const a = new Rng(123).uniformArray(100);
  const b = new Rng(123).uniformArray(100);
  const c = new Rng(124).uniformArray(100);
  t.same(a, b);
  t.notSame(a, c);
  manualSeed(7);
  const x = await rand([64]).read();
  manualSeed(7);
  const y = await rand([64]).read();
  t.same(x, y);
  const rng = new Rng(9);
  rng.uniformArray(10);
  const state = rng.getState();
  const next = rng.uniformArray(5);
  rng.setState(state);
  t.same(rng.uniformArray(5), next, 'state save/restore resumes the stream');
  t.throws(() => rng.setState([1, 2]), /four u32/);
  const n = await randn([20000], { rng: new Rng(1), mean: 2, std: 3 }).read();
  let mean = 0;
  for (const v of n) mean += v / n.length;
  let variance = 0;
  for (const v of n) variance += (v - mean) ** 2 / n.length;
  t.ok(Math.abs(mean - 2) < 0.1, `randn mean ${mean}`);
  t.ok(Math.abs(Math.sqrt(variance) - 3) < 0.1, `randn std ${Math.sqrt(variance)}`);
  const u = await rand([20000], { rng: new Rng(2), low: -1, high: 3 }).read();
  t.ok(Math.min(...u) >= -1 && Math.max(...u) < 3, 'rand stays in [low, high)');
  const p = new Rng(3).permutation(50);
  t.same([...p].sort((a, b) => a - b), [...Array(50).keys()], 'permutation');
});

t.test('tidy disposes what it does not return', async (t) => {
  const before = memory().liveBytes;
  let inner: ReturnType<typeof zeros> | null = null;
  const kept = tidy(() => {
    inner = zeros([1000]);
    const nested = tidy(() => {
      zeros([10]);
      return ones([3]);
    });
    return { nested, list: [full([2], 5)] };
  });
  t.ok(inner!.disposed, 'intermediate disposed');
  t.notOk(kept.nested.disposed, 'returned tensor kept through nested scopes');
  t.same([...(await kept.list[0].read())], [5, 5]);
  kept.nested.dispose();
  kept.list[0].dispose();
  t.equal(memory().liveBytes, before, 'no live bytes left');
  let escaped: ReturnType<typeof zeros> | null = null;
  tidy(() => {
    escaped = keep(zeros([4]));
  });
  t.notOk(escaped!.disposed, 'keep() survives the scope');
  escaped!.dispose();
  t.throws(() => tidy(() => {
    zeros([2]);
    throw new Error('boom');
  }), /boom/);
  t.equal(memory().liveBytes, before, 'a throwing scope leaks nothing');
});

t.test('a disposed tensor says so when used again', async (t) => {
  const x = tensor([1, 2, 3]);
  x.dispose();
  x.dispose(); // twice is fine
  t.throws(() => x.buffer, /Tensor #\d+ f32\[3\] was disposed and cannot be used again/);
  await t.rejects(x.read(), /was disposed/);
});

t.test('the pool reuses a buffer only after a submit', async (t) => {
  t.equal(bucketSize(1), 16);
  t.equal(bucketSize(1000), 1024);
  t.equal(bucketSize((1 << 20) + 1), (1 << 20) + (1 << 17));
  const pool = new BufferPool(r.device);
  const a = pool.acquire(4000);
  pool.release(a);
  const b = pool.acquire(4000);
  t.not(b, a, 'not reused before the submit');
  pool.submitted();
  const c = pool.acquire(3000);
  t.equal(c, a, 'reused after the submit, same bucket');
  t.equal(pool.stats().liveBuffers, 2);
  pool.release(b);
  pool.release(c);
  pool.submitted();
  t.equal(pool.stats().liveBytes, 0);
  t.equal(pool.stats().pooledBytes, 8192);
  pool.trim();
  t.equal(pool.stats().pooledBytes, 0);
});

t.test('dispatches share one submit; pipelines are cached', async (t) => {
  await r.sync();
  const submits = r.submitCount;
  const pipelines = r.pipelineCount;
  const xs = [];
  for (let i = 0; i < 10; i++) xs.push(full([100], i));
  t.equal(r.submitCount, submits, 'nothing submitted before a sync point');
  t.equal(r.pipelineCount, pipelines, 'fill pipeline reused');
  t.same([...(await xs[9].read())].slice(0, 2), [9, 9]);
  t.equal(r.submitCount, submits + 1, 'one submit for ten dispatches and the read-back');
  for (const x of xs) x.dispose();
  const old = r.maxDispatchesPerBatch;
  r.maxDispatchesPerBatch = 4;
  for (let i = 0; i < 9; i++) full([10], i).dispose();
  t.equal(r.submitCount, submits + 3, 'flushed every 4 dispatches');
  r.maxDispatchesPerBatch = old;
  await r.sync();
});

t.test('bind groups are reused for the same buffers and dropped with them', async (t) => {
  await r.sync();
  const a = tensor([1, 2, 3, 4, 5], [5]);
  const b = tensor([10, 20, 30, 40, 50], [5]);
  const sum = async () => {
    const y = add(a, b);
    const v = [...(await y.read())];
    y.dispose();
    return v;
  };
  const first = await sum();
  await sum();
  const before = { ...r.bindGroupStats };
  // A released buffer is reused after the next submit, so the third add writes into the first
  // one's output buffer: the same three buffers and uniform slot as the first add.
  const third = await sum();
  t.same(first, [11, 22, 33, 44, 55]);
  t.same(third, first);
  t.equal(r.bindGroupStats.reused - before.reused, 1, 'the third add reused the first one\'s bind group');
  t.equal(r.bindGroupStats.created - before.created, 0, 'and created none');
  const cached = r.bindGroupCacheSize;
  a.dispose();
  b.dispose();
  await r.sync();
  r.pool.trim();
  t.ok(r.bindGroupCacheSize < cached, 'destroying the pooled buffers dropped their bind groups');
  // New buffers of the same sizes (fresh GPUBuffers: the pool was emptied) bind afresh.
  const c = tensor([1, 1, 1, 1, 1], [5]);
  const d = tensor([2, 2, 2, 2, 2], [5]);
  const y = add(c, d);
  t.same([...(await y.read())], [3, 3, 3, 3, 3]);
  await r.checkErrors();
  for (const x of [c, d, y]) x.dispose();
});

t.test('a GPU error names the kernel that caused it, and the runtime recovers', async (t) => {
  const broken: Kernel = {
    name: 'test.broken_kernel',
    key: 'test.broken_kernel',
    code: () => '@compute @workgroup_size(1) fn main() { let x: u32 = undefined_name; }',
  };
  const x = empty([4]);
  r.dispatch(broken, [], null, [1]);
  await t.rejects(r.sync(), /test\.broken_kernel/);
  // a later error-free batch works
  t.same([...(await full([2], 3).read())], [3, 3]);
  x.dispose();
  t.throws(() => wgsl('fill', { PARAMS: '' }) && wgsl('no_such_family'), /no_such_family/);
});

t.test('GPU timestamps time recorded work', async (t) => {
  const ms = await r.timeGpu(() => {
    for (let i = 0; i < 3; i++) full([1 << 18], i).dispose();
  });
  if (r.caps.timestampQuery) t.ok(ms !== null && ms > 0, `timed ${ms} ms`);
  else t.equal(ms, null);
});

const noTextures = r.caps.readonlyStorageTextures ? false : 'this device has no read-only storage textures';
t.test('vec4Texture holds a buffer\'s vec4s row by row, in scratch slots that grow', { skip: noTextures }, async (t) => {
  t.equal(VEC4_TEXTURE_WIDTH & (VEC4_TEXTURE_WIDTH - 1), 0, 'the row width is a power of two');
  const readBack: Kernel = {
    name: 'test.vec4_texture_read',
    key: 'test.vec4_texture_read',
    code: () => `
@group(0) @binding(0) var T: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(2) var<uniform> p: vec4u;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.x) { out[g.x] = textureLoad(T, vec2u(g.x % ${VEC4_TEXTURE_WIDTH}u, g.x / ${VEC4_TEXTURE_WIDTH}u)); }
}`,
  };
  // Through slot `slot`, the first n vec4s of a buffer of `total` floats.
  const roundTrip = async (n: number, total: number, slot: number) => {
    const src = tensor(Float32Array.from({ length: total }, (_, i) => i * 0.5 - 7), [total]);
    const out = empty([4 * n]);
    r.dispatch(readBack, [r.vec4Texture(src.buffer, n, slot), out.buffer], new Uint32Array([n, 0, 0, 0]), [Math.ceil(n / 64)]);
    const got = (await out.read()) as Float32Array;
    let bad = -1;
    for (let i = 0; i < 4 * n && bad < 0; i++) if (got[i] !== i * 0.5 - 7) bad = i;
    t.equal(bad, -1, `${n} vec4s through slot ${slot}${bad >= 0 ? `: first wrong float ${bad}` : ''}`);
    src.dispose();
    out.dispose();
  };
  const W = VEC4_TEXTURE_WIDTH;
  await roundTrip(2 * W + 5, 4 * (2 * W + 5), 0); // two whole rows and a partial one
  await roundTrip(37, 4 * 64, 0); // fewer vec4s than the buffer holds; the slot is reused
  await roundTrip(5 * W, 4 * 5 * W, 0); // the slot grows (its old texture is destroyed)
  await roundTrip(W - 1, 4 * W, 1);
  await roundTrip(3, 12, 0);
  const big = tensor(new Float32Array(64), [64]);
  t.throws(() => r.vec4Texture(big.buffer, 1 + big.buffer.size / 16, 0), /more than the .*byte buffer holds/);
  t.throws(() => r.vec4Texture(big.buffer, W * r.caps.maxTextureDimension2D + 1, 0), /do not fit one texture/);
  t.notOk(r.vec4TextureFits(W * r.caps.maxTextureDimension2D + 1), 'more rows than a texture may have do not fit');
  t.ok(r.vec4TextureFits(W * r.caps.maxTextureDimension2D), 'the largest that fits');
  big.dispose();
  await r.checkErrors();
});

t.test('profileGpu: GPU time per kernel, each dispatch timed on its own', { skip: r.caps.timestampQuery ? false : 'no timestamp queries' }, async (t) => {
  const a = rand([256, 256]);
  const b = full([256, 256], 0.5);
  const work = () => {
    for (let i = 0; i < 3; i++) matmul(a, b).dispose();
    add(a, b).dispose();
  };
  work(); // compiles
  await r.sync();
  const profile = (await r.profileGpu(work))!;
  const names = profile.map((e) => e.kernel);
  const mm = profile.find((e) => e.kernel.startsWith('matmul'));
  t.ok(mm, `a matmul kernel is listed: ${names.join(', ')}`);
  t.equal(mm!.count, 3, 'its three dispatches');
  t.ok(mm!.ms > 0, `and their time: ${mm!.ms.toFixed(3)} ms`);
  t.ok(profile.some((e) => e.kernel.startsWith('elementwise') && e.count === 1), 'the add, once');
  t.same([...profile].sort((x, y) => y.ms - x.ms), profile, 'slowest first');
  const total = (await r.timeGpu(work))!;
  const summed = profile.reduce((s, e) => s + e.ms, 0);
  t.ok(summed > 0.3 * total && summed < 10 * total, `per-kernel sum ${summed.toFixed(3)} ms beside timeGpu's ${total.toFixed(3)} ms`);
  for (const x of [a, b]) x.dispose();
});

t.test('GPU timestamps count copies recorded outside compute passes', { skip: !r.caps.timestampQuery || noTextures ? 'no timestamp queries or textures' : false }, async (t) => {
  const n = 1 << 20; // 16 MiB
  const src = empty([4 * n]);
  const copy = () => {
    r.vec4Texture(src.buffer, n, 0); // a batch of one copy and no dispatch
  };
  await r.timeGpu(copy); // the first touches fresh memory
  const ms = await r.timeGpu(copy);
  // Empty passes alone take microseconds; 16 MiB at 200 GB/s would take 0.08 ms.
  t.ok(ms !== null && ms > 0.08, `a 16 MiB copy alone timed ${ms} ms`);
  src.dispose();
});

t.test('no adapter: a clear error that names the fix', async (t) => {
  const script = "import('./engine/node.ts').then(m => m.init()).then(() => { console.log('ADAPTER'); process.exit(0); }, e => { console.log(e.name + ': ' + e.message); process.exit(3); })";
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
  const noDriver = run({ VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' });
  t.equal(noDriver.status, 3, 'exits through the error, no crash or hang');
  t.match(noDriver.stdout, /NoGpuError: No WebGPU adapter/);
  t.match(noDriver.stdout, /npm run setup:vulkan/);
  const wrongName = run({ VQ_ADAPTER: 'no-such-adapter-xyz' });
  t.equal(wrongName.status, 3);
  t.match(wrongName.stdout, /NoGpuError: No WebGPU adapter matching VQ_ADAPTER="no-such-adapter-xyz"/);
});
