// The device's life: a lost device is reported once, refuses work with an actionable message,
// and init() then makes a new one; errors outside any batch name the kernel; an engine can run
// on a device the caller made (and is left alone by destroyGpu).
import t from 'tap';
import { GpuError, NoGpuError, createGpu, currentRuntime, destroyGpu, init, rt } from '../engine/node.js';
import { tensor } from '../engine/tensor.js';
import { matmul } from '../engine/matmul.js';

t.teardown(() => destroyGpu());

t.test('a lost device: reported once, clear errors, and init() starts over', async (t) => {
  const lost: string[] = [];
  const r1 = await init({ onDeviceLost: (m) => lost.push(m) });
  const x = tensor([1, 2, 3, 4], [2, 2]);
  t.same([...(await matmul(x, x).read())], [7, 10, 15, 22]);
  r1.device.destroy(); // as if the driver had taken it away
  await r1.device.lost;
  await new Promise((res) => setTimeout(res, 0));
  t.equal(lost.length, 1, 'onDeviceLost called once');
  t.match(lost[0], /destroyed/, `reason: ${lost[0]}`);
  t.equal(currentRuntime(), null, 'the lost runtime is forgotten');
  t.throws(() => matmul(x, x), GpuError);
  t.throws(() => r1.upload(new Float32Array(4)), /The GPU device was lost \(.*\)\. Call init\(\) again for a new device, then re-create tensors and models/);
  const r2 = await init();
  t.not(r2, r1, 'a new runtime');
  t.equal(rt(), r2);
  const y = tensor([1, 0, 0, 1], [2, 2]);
  t.same([...(await matmul(y, y).read())], [1, 0, 0, 1], 'the new device computes');
  // A tensor of the lost device disposed now must not hand its dead buffer to the new pool.
  const pooled = r2.pool.stats();
  x.dispose();
  t.same(r2.pool.stats(), pooled, "disposing the lost device's tensor leaves the new pool alone");
  await r2.sync();
  const z = tensor([2, 0, 0, 2], [2, 2]);
  t.same([...(await matmul(z, y).read())], [2, 0, 0, 2], 'new tensors of the same size work (no buffer of the old device)');
  await r2.checkErrors();
  destroyGpu();
  t.equal(lost.length, 1, 'a deliberate destroyGpu is not reported as a loss');
});

t.test('an error outside any batch is reported by the next check, naming the kernel', async (t) => {
  const r = await init();
  const x = tensor([1, 2, 3, 4], [2, 2]);
  await matmul(x, x).read(); // compiles the matmul kernel
  const name = [...(r as unknown as { pipelines: Map<string, { pipeline: GPUComputePipeline }> }).pipelines.values()][0].pipeline.label;
  t.match(name, /^matmul/, `a compiled kernel: ${name}`);
  // An invalid bind group made directly on the device, outside the runtime's error scopes.
  const buffer = r.device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE });
  r.device.createBindGroup({ layout: r.device.createBindGroupLayout({ entries: [] }), entries: [{ binding: 0, resource: { buffer } }], label: name });
  await r.device.queue.onSubmittedWorkDone();
  await new Promise((res) => setTimeout(res, 20));
  await t.rejects(r.checkErrors(), { name: 'GpuError', message: new RegExp(`^GPU validation error in kernel '${name.replace(/\./g, '\\.')}'`) });
  await r.checkErrors(); // reported once
  buffer.destroy();
});

t.test('the engine runs on a device the caller made; destroyGpu leaves it alone', async (t) => {
  await init();
  const dawn = (globalThis as any).navigator.gpu as GPU;
  (globalThis as any).__testDawnInstance = dawn; // keep Dawn alive while our own device lives
  const own = await createGpu({ gpu: dawn });
  destroyGpu();
  const r = await init({ device: own.device });
  t.equal(r.device, own.device);
  t.type(r.caps.description, 'string');
  const x = tensor([2, 0, 0, 2], [2, 2]);
  t.same([...(await matmul(x, x).read())], [4, 0, 0, 4]);
  destroyGpu();
  const buf = own.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  await buf.mapAsync(GPUMapMode.READ);
  t.pass("the caller's device still works after destroyGpu");
  own.device.destroy();
  delete (globalThis as any).__testDawnInstance;
});

t.test('no WebGPU at all: a message that says where WebGPU is', async (t) => {
  const saved = (globalThis as any).navigator;
  (globalThis as any).navigator = {};
  try {
    await t.rejects(createGpu(), { name: 'NoGpuError', message: /navigator\.gpu is undefined.*Chrome and Edge 113\+.*--enable-unsafe-webgpu.*secure/ });
  } finally {
    (globalThis as any).navigator = saved;
  }
  t.ok(NoGpuError);
});
