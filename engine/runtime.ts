// The runtime records kernel dispatches into one command encoder and one open compute pass,
// and submits them at sync points (read-back, timing) or every `maxDispatchesPerBatch`
// dispatches. Pipelines are cached by kernel key; each dispatch's small parameter block goes
// into a per-batch uniform arena (one buffer, 256-byte slots) instead of a buffer per dispatch.
import { type Capabilities, type DeviceOptions, type Gpu, currentGpu, getGpu } from './device.js';
import { BufferPool } from './pool.js';

/** A compute kernel: `code` is called only when `key` is not in the pipeline cache. */
export interface Kernel {
  /** Name shown in errors and profiles, e.g. 'matmul.reg'. */
  name: string;
  /** Cache key: the name plus every specialisation baked into the code. */
  key: string;
  code: () => string;
}

export type Grid = [number, number?, number?];

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment
const WORKGROUP_LIMIT = 65535;
/** Bind groups kept at most (a seed-model training step uses about 200). */
const BIND_GROUP_CACHE_SIZE = 4096;

export class GpuError extends Error {
  override name = 'GpuError';
}

interface Batch {
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder | null;
  kernels: string[];
  uniformBytes: number;
}

/** Compute passes one timeGpu call can time (WebGPU query sets hold 4096 timestamps). */
export const MAX_TIMED_PASSES = 2048;

export class Runtime {
  readonly device: GPUDevice;
  readonly caps: Capabilities;
  readonly pool: BufferPool;
  /** Dispatches recorded before a submit; 1 makes every GPU error point at one kernel. */
  maxDispatchesPerBatch: number;

  private pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; id: number }>();
  /**
   * Bind groups by pipeline and bound ranges. A training step binds mostly the same pool
   * buffers every step (at batch 32, 165 of a seed step's 180 dispatches found their group),
   * and createBindGroup was over a third of the JS time of recording a step (Dawn validates
   * every entry): with the cache that time fell from 7.6 to 6.3 ms on lavapipe's host CPU.
   * Keys name buffers by an id per GPUBuffer object, so a destroyed buffer's groups can never
   * be hit again; they are dropped when the pool destroys it (so they do not pile up), and the
   * least recently used beyond BIND_GROUP_CACHE_SIZE. Env VQ_BIND_GROUP_CACHE=0 turns the
   * cache off.
   */
  private bindGroups = new Map<string, { group: GPUBindGroup; buffers: number[] }>();
  private groupsByBuffer = new Map<number, Set<string>>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  /** Ids of pipelines built so far (a rebuilt pipeline gets a new one: it has a new layout). */
  private pipelineIds = 0;
  private nextBufferId = 1;
  /** Whether dispatches reuse cached bind groups (env VQ_BIND_GROUP_CACHE=0: no). */
  cacheBindGroups = process.env.VQ_BIND_GROUP_CACHE !== '0';
  /** Bind groups created and reused so far (for tests and profiling). */
  bindGroupStats = { created: 0, reused: 0 };
  private batch: Batch | null = null;
  private uniformArena: GPUBuffer;
  private uniformStaging: Uint8Array;
  private errorChecks: Promise<void>[] = [];
  private lost: string | null = null;
  private stagingFree: GPUBuffer[] = [];
  private timing: { set: GPUQuerySet; used: number; capacity: number; overflow: boolean } | null = null;
  /** Dispatches recorded and queue submits made since start (for tests and profiling). */
  dispatchCount = 0;
  submitCount = 0;
  /** Compute passes opened so far (timeGpu writes two timestamps per pass). */
  passCount = 0;

  /** Number of compiled pipelines (one per kernel specialisation). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  constructor(gpu: Gpu) {
    this.device = gpu.device;
    this.caps = gpu.caps;
    this.pool = new BufferPool(this.device);
    this.pool.onDestroy = (buf) => this.forgetBindGroups(buf);
    const envBatch = Number(process.env.VQ_BATCH_DISPATCHES ?? '');
    this.maxDispatchesPerBatch = envBatch > 0 ? envBatch : 64;
    const arenaBytes = UNIFORM_SLOT * 256;
    this.uniformArena = this.device.createBuffer({
      size: arenaBytes,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'uniform-arena',
    });
    this.uniformStaging = new Uint8Array(arenaBytes);
    this.device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.lost = `${info.reason}: ${info.message}`;
      else this.lost ??= 'the device was destroyed';
    });
    this.device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errorChecks.push(Promise.reject(new GpuError(`GPU error: ${ev.error.message}`)));
    };
  }

  private assertAlive(): void {
    if (this.lost) throw new GpuError(`The GPU device was lost (${this.lost}).`);
  }

  private pipeline(kernel: Kernel): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; id: number } {
    let p = this.pipelines.get(kernel.key);
    if (!p) {
      const t0 = performance.now();
      const module = this.device.createShaderModule({ code: kernel.code(), label: kernel.name });
      const pipeline = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
        label: kernel.name,
      });
      if (process.env.VQ_LOG_COMPILE) {
        console.error(`[vq] compiled ${kernel.key} in ${(performance.now() - t0).toFixed(0)} ms`);
      }
      p = { pipeline, layout: pipeline.getBindGroupLayout(0), id: ++this.pipelineIds };
      this.pipelines.set(kernel.key, p);
    }
    return p;
  }

  private openBatch(): Batch {
    if (!this.batch) {
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
      this.batch = {
        encoder: this.device.createCommandEncoder(),
        pass: null,
        kernels: [],
        uniformBytes: 0,
      };
    }
    return this.batch;
  }

  private openPass(b: Batch): GPUComputePassEncoder {
    if (!b.pass) {
      let timestampWrites: GPUComputePassTimestampWrites | undefined;
      const t = this.timing;
      if (t && t.used + 2 > t.capacity) t.overflow = true;
      else if (t) {
        timestampWrites = {
          querySet: t.set,
          beginningOfPassWriteIndex: t.used,
          endOfPassWriteIndex: t.used + 1,
        };
        t.used += 2;
      }
      b.pass = b.encoder.beginComputePass({ timestampWrites });
      this.passCount++;
    }
    return b.pass;
  }

  /**
   * Records one dispatch. `buffers` bind at 0..n-1 in order (a whole buffer, or a range of one
   * where the shader declares a fixed size, e.g. a uniform array); `params` (if any) binds as a
   * uniform at binding n. `grid` counts workgroups.
   */
  dispatch(kernel: Kernel, buffers: (GPUBuffer | GPUBufferBinding)[], params: ArrayBufferView | null, grid: Grid): void {
    this.assertAlive();
    const [gx, gy = 1, gz = 1] = grid;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (gx > WORKGROUP_LIMIT || gy > WORKGROUP_LIMIT || gz > WORKGROUP_LIMIT) {
      throw new GpuError(`${kernel.name}: grid [${gx}, ${gy}, ${gz}] exceeds ${WORKGROUP_LIMIT} workgroups per dimension`);
    }
    const b = this.openBatch();
    const p = this.pipeline(kernel);
    const resources: GPUBufferBinding[] = buffers.map((b) => ((b as GPUBufferBinding).buffer ? (b as GPUBufferBinding) : { buffer: b as GPUBuffer }));
    if (params) {
      const bytes = new Uint8Array(params.buffer, params.byteOffset, params.byteLength);
      const offset = b.uniformBytes;
      this.uniformStaging.set(bytes, offset);
      b.uniformBytes += Math.ceil(Math.max(bytes.byteLength, 16) / UNIFORM_SLOT) * UNIFORM_SLOT;
      resources.push({ buffer: this.uniformArena, offset, size: Math.ceil(bytes.byteLength / 16) * 16 });
    }
    const bindGroup = this.bindGroup(p, resources, kernel.name);
    const pass = this.openPass(b);
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(gx, gy, gz);
    b.kernels.push(kernel.name);
    this.dispatchCount++;
    if (
      b.kernels.length >= this.maxDispatchesPerBatch ||
      b.uniformBytes + UNIFORM_SLOT > this.uniformStaging.byteLength
    ) {
      this.flush();
    }
  }

  /** The bind group of `resources` (bound at 0..n-1) for pipeline `p`, from the cache when it has it. */
  private bindGroup(p: { layout: GPUBindGroupLayout; id: number }, resources: GPUBufferBinding[], label: string): GPUBindGroup {
    const create = () => {
      this.bindGroupStats.created++;
      return this.device.createBindGroup({ layout: p.layout, entries: resources.map((resource, binding) => ({ binding, resource })), label });
    };
    if (!this.cacheBindGroups) return create();
    const ids = resources.map((r) => this.bufferId(r.buffer));
    let key = `${p.id}`;
    resources.forEach((r, i) => (key += `|${ids[i]}@${r.offset ?? 0}+${r.size ?? -1}`));
    const hit = this.bindGroups.get(key);
    if (hit) {
      this.bindGroupStats.reused++;
      // Move to the back: the map's order is least recently used first.
      this.bindGroups.delete(key);
      this.bindGroups.set(key, hit);
      return hit.group;
    }
    const group = create();
    const held = [...new Set(ids)];
    this.bindGroups.set(key, { group, buffers: held });
    for (const id of held) {
      let keys = this.groupsByBuffer.get(id);
      if (!keys) this.groupsByBuffer.set(id, (keys = new Set()));
      keys.add(key);
    }
    if (this.bindGroups.size > BIND_GROUP_CACHE_SIZE) this.dropBindGroup(this.bindGroups.keys().next().value!);
    return group;
  }

  private bufferId(buf: GPUBuffer): number {
    let id = this.bufferIds.get(buf);
    if (id === undefined) this.bufferIds.set(buf, (id = this.nextBufferId++));
    return id;
  }

  private dropBindGroup(key: string): void {
    const entry = this.bindGroups.get(key);
    if (!entry) return;
    this.bindGroups.delete(key);
    for (const id of entry.buffers) {
      const keys = this.groupsByBuffer.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.groupsByBuffer.delete(id);
    }
  }

  /** Drops every cached bind group that holds `buf` (called before the buffer is destroyed). */
  forgetBindGroups(buf: GPUBuffer): void {
    const id = this.bufferIds.get(buf);
    if (id === undefined) return;
    for (const key of [...(this.groupsByBuffer.get(id) ?? [])]) this.dropBindGroup(key);
  }

  /** Cached bind groups now (for tests). */
  get bindGroupCacheSize(): number {
    return this.bindGroups.size;
  }

  /** Records a buffer-to-buffer copy (ends the open pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.assertAlive();
    const b = this.openBatch();
    if (b.pass) {
      b.pass.end();
      b.pass = null;
    }
    b.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    b.kernels.push('copy');
  }

  /** Submits everything recorded so far. */
  flush(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    if (b.pass) b.pass.end();
    if (b.uniformBytes > 0) {
      this.device.queue.writeBuffer(this.uniformArena, 0, this.uniformStaging, 0, b.uniformBytes);
    }
    this.device.queue.submit([b.encoder.finish()]);
    this.submitCount++;
    this.pool.submitted();
    const kernels = b.kernels;
    const check = async (scope: Promise<GPUError | null>) => {
      const err = await scope;
      if (!err) return;
      // A pipeline that failed to build stays invalid: forget it so a fixed retry rebuilds.
      if (/CreateShaderModule|CreateComputePipeline/.test(err.message)) {
        for (const [key, entry] of this.pipelines) {
          if (err.message.includes(`"${entry.pipeline.label}"`)) this.pipelines.delete(key);
        }
      }
      throw new GpuError(describeError(err, kernels));
    };
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    this.errorChecks.push(check(validation), check(oom));
  }

  /** Throws the first GPU error reported for work submitted so far. */
  async checkErrors(): Promise<void> {
    const checks = this.errorChecks;
    this.errorChecks = [];
    const results = await Promise.allSettled(checks);
    this.assertAlive();
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  /** Creates a storage buffer holding `data` (a fresh pool buffer, so no ordering hazard). */
  upload(data: ArrayBufferView, label?: string): GPUBuffer {
    this.assertAlive();
    const buf = this.pool.acquire(data.byteLength, label);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // writeBuffer needs a multiple of 4 bytes
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    if (padded.byteLength > 0) this.device.queue.writeBuffer(buf, 0, padded);
    return buf;
  }

  /**
   * Overwrites the start of a buffer that recorded work may still use: submits that work
   * first, so the write lands after it in queue order (queue.writeBuffer would otherwise
   * overtake the unsubmitted commands).
   */
  overwrite(dst: GPUBuffer, data: ArrayBufferView): void {
    this.assertAlive();
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    if (padded.byteLength > 0) this.device.queue.writeBuffer(dst, 0, padded);
  }

  /** Copies `bytes` from the start of `src` back to the CPU. */
  async read(src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    this.assertAlive();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.takeStaging(size);
    this.copy(src, offset, staging, 0, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      await this.checkErrors();
      throw new GpuError(`Reading a buffer back failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.stagingFree.push(staging);
    await this.checkErrors();
    return out;
  }

  private takeStaging(size: number): GPUBuffer {
    const i = this.stagingFree.findIndex((b) => b.size >= size && b.size <= 4 * size + 4096);
    if (i >= 0) return this.stagingFree.splice(i, 1)[0];
    if (this.stagingFree.length > 8) this.stagingFree.shift()!.destroy();
    return this.device.createBuffer({
      size: Math.ceil(size / 256) * 256,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: 'readback',
    });
  }

  /** Waits until all submitted work has finished. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  /**
   * GPU time in ms of the work `fn` records, from timestamp queries on each compute pass
   * (summed), or null when the device has no timestamp queries.
   */
  async timeGpu(fn: () => void): Promise<number | null> {
    if (!this.caps.timestampQuery) {
      fn();
      await this.sync();
      return null;
    }
    this.flush();
    // Two timestamps per compute pass (one pass per batch of dispatches); WebGPU allows 4096.
    const capacity = 2 * MAX_TIMED_PASSES;
    const set = this.device.createQuerySet({ type: 'timestamp', count: capacity });
    const timing = { set, used: 0, capacity, overflow: false };
    this.timing = timing;
    try {
      fn();
    } finally {
      this.flush();
      this.timing = null;
    }
    const used = timing.used;
    if (timing.overflow) {
      set.destroy();
      throw new Error(`timeGpu: the timed work used more than ${capacity / 2} compute passes; time less at once`);
    }
    if (used === 0) {
      set.destroy();
      return 0;
    }
    const resolve = this.device.createBuffer({
      size: capacity * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const enc = this.device.createCommandEncoder();
    enc.resolveQuerySet(set, 0, used, resolve, 0);
    this.device.queue.submit([enc.finish()]);
    const raw = new BigUint64Array(await this.read(resolve, used * 8));
    resolve.destroy();
    set.destroy();
    let ns = 0n;
    for (let i = 0; i + 1 < used; i += 2) if (raw[i + 1] > raw[i]) ns += raw[i + 1] - raw[i];
    return Number(ns) / 1e6;
  }

}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

function describeError(err: GPUError, kernels: string[]): string {
  const named = [...new Set(kernels)].filter((k) => err.message.includes(`"${k}"`));
  const where = named.length
    ? `in kernel ${named.map((k) => `'${k}'`).join(', ')}`
    : `in a batch of kernels [${[...new Set(kernels)].join(', ')}] (set VQ_BATCH_DISPATCHES=1 to pin it to one)`;
  const kind = err.constructor?.name === 'GPUOutOfMemoryError' ? 'GPU out of memory' : 'GPU validation error';
  return `${kind} ${where}: ${err.message.trim()}`;
}

/**
 * The length (vec4s) of a uniform array a kernel can declare to read a buffer of `floats` f32
 * values through: a power of two (at least 16) so that few kernel variants serve every size,
 * or 0 when it would not fit one uniform binding or would run past the buffer's `bufferBytes`
 * (the binding must cover the whole declared array). On lavapipe a per-lane uniform load is a
 * branch-free gather, a per-lane storage load a bounds-checked scalar load per lane.
 */
export function uniformArrayVec4s(floats: number, bufferBytes: number): number {
  const vec4s = 2 ** Math.ceil(Math.log2(Math.max(16, floats / 4)));
  return vec4s * 16 <= rt().caps.maxUniformBufferBindingSize && vec4s * 16 <= bufferBytes ? vec4s : 0;
}

/** Splits `workgroups` over x and y so neither exceeds the per-dimension limit. */
export function grid1d(workgroups: number): Grid {
  if (workgroups <= WORKGROUP_LIMIT) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / WORKGROUP_LIMIT);
  return [Math.ceil(workgroups / y), y, 1];
}

let runtime: Runtime | null = null;

/** Initialises the process-wide device and runtime (idempotent). */
export async function init(opts: DeviceOptions = {}): Promise<Runtime> {
  if (!runtime) runtime = new Runtime(await getGpu(opts));
  return runtime;
}

/** The process-wide runtime; `init()` must have completed. */
export function rt(): Runtime {
  if (!runtime) {
    currentGpu(); // throws the 'not initialised' message
    throw new Error('unreachable');
  }
  return runtime;
}

/** Forgets the runtime (after destroyGpu). */
export function resetRuntime(): void {
  runtime = null;
}
