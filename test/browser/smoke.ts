// Raw WebGPU in the page, no engine: request an adapter and a device, double an array in a
// compute shader, read it back. It tells "WebGPU is unavailable in this browser" apart from
// engine failures.

export interface SmokeResult {
  ok: boolean;
  detail: string;
  adapter?: string;
  output?: number[];
}

const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&data)) { data[id.x] = 2.0 * data[id.x]; }
}`;

export async function smoke(n = 1000): Promise<SmokeResult> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) return { ok: false, detail: 'navigator.gpu is undefined (WebGPU is off: a Chromium without --enable-unsafe-webgpu, or not a secure context)' };
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { ok: false, detail: 'navigator.gpu.requestAdapter() returned null (no WebGPU adapter: SwiftShader/Vulkan unavailable?)' };
  const info = adapter.info;
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const device = await adapter.requestDevice();
  device.pushErrorScope('validation');
  const input = Float32Array.from({ length: n }, (_, i) => i - 0.5);
  const data = device.createBuffer({ size: input.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(data, 0, input);
  const readback = device.createBuffer({ size: input.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: SHADER }), entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: data } }] });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  encoder.copyBufferToBuffer(data, 0, readback, 0, input.byteLength);
  device.queue.submit([encoder.finish()]);
  const error = await device.popErrorScope();
  if (error) return { ok: false, adapter: name, detail: `validation error: ${error.message}` };
  await readback.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(readback.getMappedRange().slice(0));
  readback.unmap();
  device.destroy();
  const bad = out.findIndex((v, i) => v !== 2 * input[i]);
  return {
    ok: bad < 0,
    adapter: name,
    output: [...out.subarray(0, 4)],
    detail: bad < 0 ? `${n} values doubled on ${name}` : `element ${bad}: got ${out[bad]}, expected ${2 * input[bad]}`,
  };
}
