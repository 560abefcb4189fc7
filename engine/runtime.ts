// The runtime records kernel dispatches into one command encoder and one open compute pass,
// and submits them at sync points (read-back, timing) or every `maxDispatchesPerBatch`
// dispatches. Pipelines are cached by kernel key; each dispatch's small parameter block goes
// into a per-batch uniform arena (one buffer, 256-byte slots) instead of a buffer per dispatch.
// While engine/recording.ts captures a step, every command is also reported to it, and
// replayCommands encodes a recorded step again without any of that work.
import { type Capabilities, type Gpu, type InitOptions, createGpu } from './device.js';
import { BindGroupCache } from './bind_groups.js';
import { flags } from './flags.js';
import { BufferPool } from './pool.js';
import { VEC4_TEXTURE_WIDTH, vec4TextureFits } from './texture_plan.js';

/** A compute kernel: `code` is called only when `key` is not in the pipeline cache. */
export interface Kernel {
  /** Name shown in errors and profiles, e.g. 'matmul.reg'. */
  name: string;
  /** Cache key: the name plus every specialisation baked into the code. */
  key: string;
  code: () => string;
}

export type Grid = [number, number?, number?];

/** A texture view to bind where a kernel declares a texture (see Runtime.vec4Texture). */
export interface TextureViewBinding {
  textureView: GPUTextureView;
}

/** What a dispatch binds: a whole buffer, a range of one, or a texture view. */
export type Binding = GPUBuffer | GPUBufferBinding | TextureViewBinding;

export { VEC4_TEXTURE_WIDTH } from './texture_plan.js';

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment
const WORKGROUP_LIMIT = 65535;

export class GpuError extends Error {
  override name = 'GpuError';
}

interface Batch {
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder | null;
  /** The pipeline the open pass has set (a dispatch with the same one skips setPipeline). */
  pipeline: GPUComputePipeline | null;
  kernels: string[];
  uniformBytes: number;
  /** A copy was recorded after the last compute pass (timeGpu then closes with an empty pass). */
  copyLast: boolean;
}

/**
 * Timestamp queries of timeGpu/profileGpu: two per compute pass; `batchStart` is the first query
 * index of the open batch, `spans` the [first, last] query indices of each submitted batch, and
 * `passKernels` (profileGpu) the kernel of each timed pass.
 */
interface Timing {
  set: GPUQuerySet;
  used: number;
  capacity: number;
  overflow: boolean;
  batchStart: number;
  spans: [number, number][];
  passKernels: string[] | null;
}

/** Compute passes one timeGpu call can time (WebGPU query sets hold 4096 timestamps). */
export const MAX_TIMED_PASSES = 2048;

/**
 * The runtime reports every GPU command here while engine/recording.ts captures a step (see
 * recordStep): dispatches with their pipeline, bindings and parameter bytes, copies, and queue
 * writes (which a replay turns into in-order copies).
 */
export interface CommandCapture {
  dispatch(kernel: Kernel, layout: GPUBindGroupLayout, pipeline: GPUComputePipeline, resources: (GPUBufferBinding | GPUTextureView)[], params: Uint8Array | null, grid: [number, number, number]): void;
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void;
  copyToTexture(src: GPUBuffer, srcOffset: number, bytesPerRow: number, texture: GPUTexture, origin: [number, number], size: [number, number]): void;
  /** Data written into `dst` (fixed: a replay writes the same bytes). */
  write(dst: GPUBuffer, bytes: Uint8Array): void;
  /** Data that a replay computes again: `values` runs once per step (see Runtime.writePerStep). */
  writePerStep(dst: GPUBuffer, bytes: number, values: () => ArrayBufferView): void;
  /** Something inside the step cannot be replayed (a readback): recordStep throws `message`. */
  fail(message: string): void;
  /** A pool buffer was handed out (once-work included). */
  acquired(buf: GPUBuffer): void;
}

/** A command of a recorded step, as Runtime.replayCommands encodes it. */
export type RecordedCommand =
  | { kind: 'dispatch'; name: string; pipeline: GPUComputePipeline; group: GPUBindGroup; x: number; y: number; z: number }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  | { kind: 'texture'; src: GPUBuffer; srcOffset: number; bytesPerRow: number; texture: GPUTexture; origin: [number, number]; size: [number, number] };

export class Runtime {
  readonly device: GPUDevice;
  readonly caps: Capabilities;
  readonly pool: BufferPool;
  /** Dispatches recorded before a submit; 1 makes every GPU error point at one kernel. */
  maxDispatchesPerBatch: number;

  private pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; id: number }>();
  /** Bind groups by pipeline and bound ranges (see bind_groups.ts). */
  private readonly bindGroups: BindGroupCache;
  /** Scratch textures of vec4Texture, by slot. */
  private vec4Textures: { texture: GPUTexture; view: GPUTextureView; rows: number }[] = [];
  /** Ids of pipelines built so far (a rebuilt pipeline gets a new one: it has a new layout). */
  private pipelineIds = 0;
  /** Whether dispatches reuse cached bind groups (flag bindGroupCache). */
  get cacheBindGroups(): boolean {
    return this.bindGroups.enabled;
  }
  set cacheBindGroups(on: boolean) {
    this.bindGroups.enabled = on;
  }
  /** Bind groups created and reused so far (for tests and profiling). */
  get bindGroupStats(): { created: number; reused: number } {
    return this.bindGroups.stats;
  }
  private batch: Batch | null = null;
  private uniformArena: GPUBuffer;
  private uniformStaging: Uint8Array;
  private errorChecks: Promise<void>[] = [];
  /** Why the device was lost or destroyed, once it was. */
  private lost: string | null = null;
  /** Set by destroyGpu, so that a deliberate destroy is not reported as a loss. */
  destroying = false;
  /** Whether init() created the device (destroyGpu destroys only such a device). */
  ownsDevice = true;
  private stagingFree: GPUBuffer[] = [];
  /** Timestamp queries while timeGpu or profileGpu records (see Timing). */
  private timing: Timing | null = null;
  /** Dispatches recorded and queue submits made since start (for tests and profiling). */
  dispatchCount = 0;
  submitCount = 0;
  /** Compute passes opened so far (timeGpu writes two timestamps per pass). */
  passCount = 0;

  /** The open recording (recordStep), or null; `once` work is not captured. */
  private capture: CommandCapture | null = null;
  private captureOff = 0;
  /** Scratch textures that recordings still use, with how many: a slot that outgrows one leaves it to them. */
  private textureHolds = new Map<GPUTexture, number>();
  /** Textures a slot outgrew during the open capture (held until it ends: it may use them). */
  private captureHolds: GPUTexture[] = [];
  /** Called when a pool buffer is released or destroyed (recordings that use it become invalid). */
  onBufferGone: ((buf: GPUBuffer, why: 'released' | 'destroyed') => void) | null = null;

  /** Called before each pipeline compiles (the trainers say that a cold start is compiling). */
  onCompile: ((kernel: string) => void) | null = null;

  /**
   * Called with each kernel's WGSL just before its pipeline compiles (once per cache key). The
   * engine core writes no files: engine/node.ts installs a writer for flag dumpWgsl (VQ_DUMP_WGSL).
   */
  onKernelSource: ((kernel: Kernel, code: string) => void) | null = null;

  /** Number of compiled pipelines (one per kernel specialisation). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  constructor(gpu: Gpu, onLost?: (message: string) => void) {
    this.device = gpu.device;
    this.bindGroups = new BindGroupCache(this.device, flags().bindGroupCache);
    this.caps = gpu.caps;
    this.pool = new BufferPool(this.device);
    this.pool.onDestroy = (buf) => {
      this.forgetBindGroups(buf);
      this.onBufferGone?.(buf, 'destroyed');
    };
    this.pool.onRelease = (buf) => this.onBufferGone?.(buf, 'released');
    this.pool.onAcquire = (buf) => this.capture?.acquired(buf);
    this.maxDispatchesPerBatch = flags().batchDispatches;
    const arenaBytes = UNIFORM_SLOT * 256;
    this.uniformArena = this.device.createBuffer({
      size: arenaBytes,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'uniform-arena',
    });
    this.uniformStaging = new Uint8Array(arenaBytes);
    this.device.lost.then((info) => {
      const deliberate = this.destroying;
      this.lost = deliberate ? 'the device was destroyed' : `${info.reason === 'destroyed' ? 'destroyed' : 'lost'}: ${info.message.trim() || 'no reason given'}`;
      if (!deliberate) onLost?.(this.lost);
    });
    this.device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      const rejection = Promise.reject(new GpuError(describeError(ev.error, this.kernelNames())));
      rejection.catch(() => {}); // reported by the next checkErrors, never as an unhandled rejection
      this.errorChecks.push(rejection);
    };
  }

  /** Whether the device was lost or destroyed (the runtime then refuses work). */
  get isLost(): boolean {
    return this.lost !== null;
  }

  /** Names of every kernel compiled so far (to name the one an uncaptured error came from). */
  private kernelNames(): string[] {
    return [...new Set([...this.pipelines.values()].map((p) => p.pipeline.label))];
  }

  private assertAlive(): void {
    if (this.lost) {
      throw new GpuError(`The GPU device was lost (${this.lost}). Call init() again for a new device, then re-create tensors and models (load them from a checkpoint).`);
    }
  }

  private pipeline(kernel: Kernel): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; id: number } {
    let p = this.pipelines.get(kernel.key);
    if (!p) {
      this.onCompile?.(kernel.name);
      const t0 = performance.now();
      const code = kernel.code();
      this.onKernelSource?.(kernel, code);
      const module = this.device.createShaderModule({ code, label: kernel.name });
      const pipeline = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
        label: kernel.name,
      });
      if (flags().logCompile) {
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
        pipeline: null,
        kernels: [],
        uniformBytes: 0,
        copyLast: false,
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
      b.pipeline = null;
      b.copyLast = false;
      this.passCount++;
    }
    return b.pass;
  }

  /**
   * Records one dispatch. `buffers` bind at 0..n-1 in order (a whole buffer, or a range of one
   * where the shader declares a fixed size, e.g. a uniform array); `params` (if any) binds as a
   * uniform at binding n. `grid` counts workgroups.
   */
  dispatch(kernel: Kernel, buffers: Binding[], params: ArrayBufferView | null, grid: Grid): void {
    this.assertAlive();
    const [gx, gy = 1, gz = 1] = grid;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (gx > WORKGROUP_LIMIT || gy > WORKGROUP_LIMIT || gz > WORKGROUP_LIMIT) {
      throw new GpuError(`${kernel.name}: grid [${gx}, ${gy}, ${gz}] exceeds ${WORKGROUP_LIMIT} workgroups per dimension`);
    }
    const b = this.openBatch();
    const p = this.pipeline(kernel);
    const resources: (GPUBufferBinding | GPUTextureView)[] = buffers.map((b) =>
      'textureView' in b ? b.textureView : 'buffer' in b ? b : { buffer: b },
    );
    const bytes = params ? new Uint8Array(params.buffer, params.byteOffset, params.byteLength) : null;
    if (this.capture && !this.captureOff) this.capture.dispatch(kernel, p.layout, p.pipeline, [...resources], bytes && bytes.slice(), [gx, gy, gz]);
    if (bytes) {
      const offset = b.uniformBytes;
      this.uniformStaging.set(bytes, offset);
      b.uniformBytes += Math.ceil(Math.max(bytes.byteLength, 16) / UNIFORM_SLOT) * UNIFORM_SLOT;
      resources.push({ buffer: this.uniformArena, offset, size: Math.ceil(bytes.byteLength / 16) * 16 });
    }
    const bindGroup = this.bindGroups.get(p, resources, kernel.name);
    this.encodeDispatch(b, p.pipeline, bindGroup, gx, gy, gz, kernel.name);
    if (
      b.kernels.length >= this.maxDispatchesPerBatch ||
      b.uniformBytes + UNIFORM_SLOT > this.uniformStaging.byteLength
    ) {
      this.flush();
    }
  }

  /** Records one dispatch into batch `b` (profileGpu: in a timed pass of its own). */
  private encodeDispatch(b: Batch, pipeline: GPUComputePipeline, group: GPUBindGroup, gx: number, gy: number, gz: number, name: string): void {
    const t = this.timing;
    if (t?.passKernels && b.pass) {
      b.pass.end();
      b.pass = null;
    }
    const pass = this.openPass(b);
    if (t?.passKernels && t.used >= 2) t.passKernels[t.used / 2 - 1] = name;
    if (b.pipeline !== pipeline) {
      pass.setPipeline(pipeline);
      b.pipeline = pipeline;
    }
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(gx, gy, gz);
    b.kernels.push(name);
    this.dispatchCount++;
  }

  /**
   * Encodes a recorded step's commands after the work recorded so far and submits them (see
   * engine/recording.ts): no pipeline lookups, bind groups or parameter blocks are made.
   * timeGpu and profileGpu time them as they time dispatches.
   */
  replayCommands(commands: readonly RecordedCommand[]): void {
    this.assertAlive();
    if (this.capture) throw new GpuError('A recorded step cannot be replayed while another step is being recorded');
    this.flush();
    const b = this.openBatch();
    for (const c of commands) {
      if (c.kind === 'dispatch') {
        this.encodeDispatch(b, c.pipeline, c.group, c.x, c.y, c.z, c.name);
      } else if (c.kind === 'copy') {
        this.endPassForCopy(b);
        b.encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
        b.kernels.push('copy');
      } else {
        this.endPassForCopy(b);
        b.encoder.copyBufferToTexture({ buffer: c.src, offset: c.srcOffset, bytesPerRow: c.bytesPerRow }, { texture: c.texture, origin: c.origin }, c.size);
        b.kernels.push('vec4-texture');
      }
    }
    this.flush();
  }

  /**
   * Starts capturing every command into `capture` (engine/recording.ts). Only one capture at a
   * time; readbacks inside one throw.
   */
  beginCapture(capture: CommandCapture): void {
    this.assertAlive();
    if (this.capture) throw new GpuError('recordStep: a step is already being recorded (recordings do not nest)');
    this.flush();
    this.capture = capture;
    this.captureOff = 0;
  }

  /** Ends the capture begun by beginCapture and submits the work recorded. */
  endCapture(): void {
    this.capture = null;
    this.captureOff = 0;
    this.flush();
    for (const texture of this.captureHolds) this.releaseTexture(texture);
    this.captureHolds = [];
  }

  /** Whether a step is being recorded (recordStep). */
  get capturing(): boolean {
    return this.capture !== null;
  }

  /**
   * Runs `fn`'s GPU work now but leaves it out of an open recording: one-time set-up inside a
   * recorded step (an optimiser's zeroed moments on its first step) must not run on every replay.
   */
  once<T>(fn: () => T): T {
    this.captureOff++;
    try {
      return fn();
    } finally {
      this.captureOff--;
    }
  }

  /**
   * Writes this step's values (e.g. Adam's bias corrections) into `dst`, in order with the
   * commands around it: through a fresh upload buffer and a recorded copy, so no flush is
   * needed. Inside recordStep, `values` runs again on every replay (it may advance step
   * counters: it runs once per step either way) and its bytes land at this point of the step.
   */
  writePerStep(dst: GPUBuffer, values: () => ArrayBufferView): void {
    this.assertAlive();
    const data = values();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0 || bytes.byteLength > dst.size) {
      throw new GpuError(`writePerStep: ${bytes.byteLength} bytes do not fit a ${dst.size}-byte buffer in 4-byte words`);
    }
    if (this.capture && !this.captureOff) this.capture.writePerStep(dst, bytes.byteLength, values);
    const staging = this.pool.acquire(bytes.byteLength, 'per-step');
    this.device.queue.writeBuffer(staging, 0, bytes);
    const b = this.openBatch();
    this.endPassForCopy(b);
    b.encoder.copyBufferToBuffer(staging, 0, dst, 0, bytes.byteLength);
    b.kernels.push('copy');
    this.pool.release(staging);
  }

  /** Keeps a scratch texture alive for a recording until `releaseTexture` (vec4Texture leaves held ones alone). */
  holdTexture(texture: GPUTexture): void {
    this.textureHolds.set(texture, (this.textureHolds.get(texture) ?? 0) + 1);
  }

  /** Drops a hold of holdTexture; destroys the texture when no slot and no recording use it. */
  releaseTexture(texture: GPUTexture): void {
    const n = (this.textureHolds.get(texture) ?? 1) - 1;
    if (n > 0) {
      this.textureHolds.set(texture, n);
      return;
    }
    this.textureHolds.delete(texture);
    if (!this.vec4Textures.some((t) => t?.texture === texture) && !this.isLost) texture.destroy();
  }

  /** Drops every cached bind group that holds `r` (called before a buffer or texture is destroyed). */
  forgetBindGroups(r: GPUBuffer | GPUTextureView): void {
    this.bindGroups.forget(r);
  }

  /**
   * Whether vec4Texture can hold `vec4s` vec4s on this device (rows within the texture size
   * limit, and WGSL read-only storage textures).
   */
  vec4TextureFits(vec4s: number): boolean {
    return vec4TextureFits(this.caps, vec4s);
  }

  /**
   * The first `vec4s` vec4s of `src` as a read-only rgba32float texture for the next dispatches
   * (kernels declare it `texture_storage_2d<rgba32float, read>`; vec4 i is the texel
   * (i % VEC4_TEXTURE_WIDTH, i / VEC4_TEXTURE_WIDTH)). Records a copy into scratch texture
   * `slot`, so the view holds this data only until the next vec4Texture call on that slot: a
   * kernel reading two operands this way uses two slots. On lavapipe one texel load is a
   * gather per component for all lanes at once, where a vec4 load from a storage buffer is a
   * bounds-checked scalar load per lane and component (bench: conv.*.wgrad.b32 with and without VQ_CONV_WGRAD_TEXTURES).
   */
  vec4Texture(src: GPUBuffer, vec4s: number, slot: number): TextureViewBinding {
    this.assertAlive();
    if (!this.vec4TextureFits(vec4s)) throw new GpuError(`vec4Texture: ${vec4s} vec4s do not fit one texture on this device`);
    if (vec4s * 16 > src.size) throw new GpuError(`vec4Texture: ${vec4s} vec4s are more than the ${src.size}-byte buffer holds`);
    const W = VEC4_TEXTURE_WIDTH;
    const rows = Math.ceil(vec4s / W);
    let t = this.vec4Textures[slot];
    if (!t || t.rows < rows) {
      if (t) {
        // Recorded work may still read the old texture: submit it before destroying it (a
        // recording that uses it, or the one being captured, destroys it when done).
        this.flush();
        this.forgetBindGroups(t.view);
        if (this.capture) {
          this.holdTexture(t.texture);
          this.captureHolds.push(t.texture);
        } else if (!this.textureHolds.has(t.texture)) {
          t.texture.destroy();
        }
      }
      const texture = this.device.createTexture({
        size: [W, rows],
        format: 'rgba32float',
        usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
        label: `vec4-texture-${slot}`,
      });
      t = this.vec4Textures[slot] = { texture, view: texture.createView(), rows };
    }
    const b = this.openBatch();
    this.endPassForCopy(b);
    const full = Math.floor(vec4s / W);
    const rest = vec4s - full * W;
    if (full > 0) b.encoder.copyBufferToTexture({ buffer: src, bytesPerRow: W * 16 }, { texture: t.texture }, [W, full]);
    if (rest > 0) b.encoder.copyBufferToTexture({ buffer: src, offset: full * W * 16, bytesPerRow: W * 16 }, { texture: t.texture, origin: [0, full] }, [rest, 1]);
    if (this.capture && !this.captureOff) {
      if (full > 0) this.capture.copyToTexture(src, 0, W * 16, t.texture, [0, 0], [W, full]);
      if (rest > 0) this.capture.copyToTexture(src, full * W * 16, W * 16, t.texture, [0, full], [rest, 1]);
    }
    b.kernels.push('vec4-texture');
    return { textureView: t.view };
  }

  /** Cached bind groups now (for tests). */
  get bindGroupCacheSize(): number {
    return this.bindGroups.size;
  }

  /**
   * Ends the open compute pass before a copy is recorded. While timeGpu times, a batch's first
   * and last commands are always timed passes (empty ones if need be: see flush), so that the
   * time of copies before its first dispatch or after its last is counted too.
   */
  private endPassForCopy(b: Batch): void {
    const t = this.timing;
    if (!b.pass && t && t.used === t.batchStart) this.openPass(b);
    if (b.pass) {
      b.pass.end();
      b.pass = null;
    }
    b.copyLast = true;
  }

  /** Records a buffer-to-buffer copy (ends the open pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.assertAlive();
    const b = this.openBatch();
    this.endPassForCopy(b);
    b.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    b.kernels.push('copy');
    if (this.capture && !this.captureOff) this.capture.copy(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    const t = this.timing;
    if (t && b.copyLast) this.openPass(b);
    if (b.pass) b.pass.end();
    if (t && t.used > t.batchStart) t.spans.push([t.batchStart, t.used - 1]);
    if (t) t.batchStart = t.used;
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
    if (this.capture && !this.captureOff && padded.byteLength > 0) this.capture.write(buf, padded.slice());
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
    if (this.capture && !this.captureOff && padded.byteLength > 0) this.capture.write(dst, padded.slice());
  }

  /** Copies `bytes` from the start of `src` back to the CPU. */
  read(src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    if (this.capture) {
      // recordStep reports it (the caller of a read inside a synchronous step never awaits it).
      const e = new GpuError('A readback inside recordStep cannot be replayed: read the recorded step\'s results after it');
      this.capture.fail(e.message);
      const rejected = Promise.reject(e);
      rejected.catch(() => {});
      return rejected;
    }
    return this.readBack(src, bytes, offset);
  }

  private async readBack(src: GPUBuffer, bytes: number, offset: number): Promise<ArrayBuffer> {
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
   * GPU time in ms of the work `fn` records, or null when the device has no timestamp queries:
   * per submitted batch, from the start of its first compute pass to the end of its last (so
   * copies recorded between passes count), summed over batches.
   */
  async timeGpu(fn: () => void): Promise<number | null> {
    const timed = await this.timed(fn, false);
    if (!timed) return null;
    let ns = 0n;
    for (const [first, last] of timed.timing.spans) if (timed.raw[last] > timed.raw[first]) ns += timed.raw[last] - timed.raw[first];
    return Number(ns) / 1e6;
  }

  /**
   * GPU time of each kernel in the work `fn` records (every dispatch in a timed pass of its
   * own, summed by kernel name, slowest first), or null without timestamp queries. Separate
   * passes cost a little each: the sum can exceed timeGpu's figure for the same work.
   */
  async profileGpu(fn: () => void): Promise<{ kernel: string; ms: number; count: number }[] | null> {
    const timed = await this.timed(fn, true);
    if (!timed) return null;
    const byKernel = new Map<string, { kernel: string; ms: number; count: number }>();
    const names = timed.timing.passKernels!;
    for (let i = 0; 2 * i + 1 < timed.timing.used; i++) {
      const kernel = names[i] ?? 'copies';
      const ns = timed.raw[2 * i + 1] > timed.raw[2 * i] ? timed.raw[2 * i + 1] - timed.raw[2 * i] : 0n;
      const e = byKernel.get(kernel) ?? { kernel, ms: 0, count: 0 };
      e.ms += Number(ns) / 1e6;
      if (names[i] !== undefined) e.count++;
      byKernel.set(kernel, e);
    }
    return [...byKernel.values()].sort((a, b) => b.ms - a.ms);
  }

  /** Runs `fn` with timestamp queries on its compute passes and reads them back (null: none on this device). */
  private async timed(fn: () => void, perDispatch: boolean): Promise<{ timing: Timing; raw: BigUint64Array } | null> {
    if (!this.caps.timestampQuery) {
      fn();
      await this.sync();
      return null;
    }
    this.flush();
    // Two timestamps per compute pass; WebGPU allows 4096 per query set.
    const capacity = 2 * MAX_TIMED_PASSES;
    const set = this.device.createQuerySet({ type: 'timestamp', count: capacity });
    const timing: Timing = { set, used: 0, capacity, overflow: false, batchStart: 0, spans: [], passKernels: perDispatch ? [] : null };
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
      return { timing, raw: new BigUint64Array(0) };
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
    return { timing, raw };
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
 * values through on a device with `caps`: a power of two (at least 16) so that few kernel
 * variants serve every size, or 0 when it would not fit one uniform binding or would run past
 * the buffer's `bufferBytes` (the binding must cover the whole declared array). On lavapipe a
 * per-lane uniform load is a branch-free gather, a per-lane storage load a bounds-checked
 * scalar load per lane. Pure (plans call it).
 */
export function uniformVec4s(caps: Pick<Capabilities, 'maxUniformBufferBindingSize'>, floats: number, bufferBytes: number): number {
  const vec4s = 2 ** Math.ceil(Math.log2(Math.max(16, floats / 4)));
  return vec4s * 16 <= caps.maxUniformBufferBindingSize && vec4s * 16 <= bufferBytes ? vec4s : 0;
}

/** uniformVec4s on this device. */
export function uniformArrayVec4s(floats: number, bufferBytes: number): number {
  return uniformVec4s(rt().caps, floats, bufferBytes);
}

/** Splits `workgroups` over x and y so neither exceeds the per-dimension limit. */
export function grid1d(workgroups: number): Grid {
  if (workgroups <= WORKGROUP_LIMIT) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / WORKGROUP_LIMIT);
  return [Math.ceil(workgroups / y), y, 1];
}

let runtime: Runtime | null = null;
let pending: Promise<Runtime> | null = null;

/**
 * Initialises the process-wide device and runtime (idempotent while the device lives): on
 * `opts.device` when given, else through `opts.gpu`, else `navigator.gpu`. In Node.js the
 * engine's Node entry (engine/node.ts) passes Dawn's entry point. After the device is lost
 * or destroyed, the next call makes a new one.
 */
export function init(opts: InitOptions = {}): Promise<Runtime> {
  if (runtime && !runtime.isLost) return Promise.resolve(runtime);
  pending ??= createGpu(opts).then(
    (gpu) => {
      pending = null;
      runtime = new Runtime(gpu, opts.onDeviceLost);
      runtime.ownsDevice = !opts.device;
      return runtime;
    },
    (e) => {
      pending = null;
      throw e;
    },
  );
  return pending;
}

/** The live runtime, or null before init() or after the device was lost or destroyed. */
export function currentRuntime(): Runtime | null {
  return runtime && !runtime.isLost ? runtime : null;
}

/** The process-wide runtime; `init()` must have completed. */
export function rt(): Runtime {
  if (!runtime) throw new Error('The GPU is not initialised: `await init()` before running ops.');
  return runtime;
}

/**
 * Destroys the device init() created (its buffers with it; a caller's own device is left alone)
 * and forgets the runtime; init() makes a new one.
 */
export function destroyGpu(): void {
  if (runtime?.ownsDevice) {
    runtime.destroying = true;
    runtime.device.destroy();
  }
  runtime = null;
}

/** Forgets the runtime without destroying its device (kept for callers of the old API). */
export function resetRuntime(): void {
  runtime = null;
}
