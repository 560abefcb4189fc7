// A training step recorded once and replayed: recordStep runs the step for real while the
// runtime reports every GPU command it issues (dispatches with their bind groups and parameter
// bytes, copies, texture copies, queue writes); replay() encodes exactly those commands again
// and submits them, with no op code, allocation or bind-group creation in between.
//
// Static memory plan: every pool buffer the step used that is free when it ends (activations,
// gradients, scratch) is taken out of the pool and owned by the recording until dispose(); the
// buffers of live tensors (weights, optimiser state, the input batch, the results) stay theirs,
// and if one of them is released later the recording becomes invalid and replay() throws.
// Values that change per step (Adam's bias corrections, the EMA codebook's) go through
// Runtime.writePerStep, whose `values` a replay calls again; everything else replays as recorded,
// so a new shape (batch size) needs a new recording (StepRecordings keys them).
import { type CommandCapture, GpuError, type Kernel, type RecordedCommand, type Runtime, rt } from './runtime.js';
import { Tensor, keep, tidy } from './tensor.js';

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment

/** A command as captured, before the recording owns its parameter blocks and write data. */
type Captured =
  | { kind: 'dispatch'; name: string; layout: GPUBindGroupLayout; pipeline: GPUComputePipeline; resources: (GPUBufferBinding | GPUTextureView)[]; params: Uint8Array | null; grid: [number, number, number] }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  | { kind: 'texture'; src: GPUBuffer; srcOffset: number; bytesPerRow: number; texture: GPUTexture; origin: [number, number]; size: [number, number] }
  | { kind: 'write'; dst: GPUBuffer; data: Uint8Array }
  | { kind: 'perStep'; dst: GPUBuffer; bytes: number; values: () => ArrayBufferView };

/** Told when a pool buffer is released or destroyed (see watchers). */
interface BufferWatcher {
  bufferGone(buf: GPUBuffer, why: 'released' | 'destroyed'): void;
}

const watcherSets = new WeakMap<Runtime, Set<BufferWatcher>>();

/** The captures and recordings of runtime `r` that want to hear of released buffers. */
function watchers(r: Runtime): Set<BufferWatcher> {
  let set = watcherSets.get(r);
  if (!set) {
    const s = (set = new Set());
    watcherSets.set(r, s);
    r.onBufferGone = (buf, why) => {
      for (const w of s) w.bufferGone(buf, why);
    };
  }
  return set;
}

class Capture implements CommandCapture, BufferWatcher {
  readonly commands: Captured[] = [];
  /** Each buffer the commands use, with the index of the first command that uses it. */
  readonly buffers = new Map<GPUBuffer, number>();
  /** Pool buffers handed out during the step, with the command index when they last were. */
  readonly acquiredAt = new Map<GPUBuffer, number>();
  readonly textures = new Set<GPUTexture>();
  failure: string | null = null;

  private use(buf: GPUBuffer): void {
    if (!this.buffers.has(buf)) this.buffers.set(buf, this.commands.length);
  }

  acquired(buf: GPUBuffer): void {
    this.acquiredAt.set(buf, this.commands.length);
  }

  dispatch(kernel: Kernel, layout: GPUBindGroupLayout, pipeline: GPUComputePipeline, resources: (GPUBufferBinding | GPUTextureView)[], params: Uint8Array | null, grid: [number, number, number]): void {
    for (const r of resources) if ('buffer' in r) this.use(r.buffer);
    this.commands.push({ kind: 'dispatch', name: kernel.name, layout, pipeline, resources, params, grid });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.use(src);
    this.use(dst);
    this.commands.push({ kind: 'copy', src, srcOffset, dst, dstOffset, bytes });
  }

  copyToTexture(src: GPUBuffer, srcOffset: number, bytesPerRow: number, texture: GPUTexture, origin: [number, number], size: [number, number]): void {
    this.use(src);
    this.textures.add(texture);
    this.commands.push({ kind: 'texture', src, srcOffset, bytesPerRow, texture, origin, size });
  }

  write(dst: GPUBuffer, data: Uint8Array): void {
    this.use(dst);
    this.commands.push({ kind: 'write', dst, data });
  }

  writePerStep(dst: GPUBuffer, bytes: number, values: () => ArrayBufferView): void {
    this.use(dst);
    this.commands.push({ kind: 'perStep', dst, bytes, values });
  }

  fail(message: string): void {
    this.failure ??= message;
  }

  bufferGone(buf: GPUBuffer, why: 'released' | 'destroyed'): void {
    // Released buffers are reused within a step (the recording replays that reuse); only a
    // destroyed one (the pool over its limit) breaks the recording.
    if (why === 'destroyed' && this.buffers.has(buf)) this.fail('a buffer the step used was destroyed while it was recorded (the pool went over maxPooledBytes); record it again');
  }
}

/** Where per-step values land in the recording's step buffer. */
interface PerStepSlot {
  offset: number;
  bytes: number;
  values: () => ArrayBufferView;
}

/** A recorded step (recordStep): replay() runs it again; `result` holds the new values after each. */
export class Recording<T> implements BufferWatcher {
  private readonly runtime: Runtime;
  private readonly commands: RecordedCommand[];
  private readonly perStep: PerStepSlot[];
  private readonly stepBuffer: GPUBuffer | null;
  private readonly stepStaging: Uint8Array;
  /** Buffers the recording made (parameter blocks, write data), destroyed by dispose. */
  private readonly owned: GPUBuffer[];
  private readonly pinned: Set<GPUBuffer>;
  /** Buffers of live tensors the step binds: releasing one invalidates the recording. */
  private readonly borrowed: Set<GPUBuffer>;
  private readonly textures: GPUTexture[];
  private invalid: string | null = null;
  private disposed = false;
  /** Dispatches one replay makes. */
  readonly dispatches: number;
  /**
   * Bytes the step wrote from the CPU (uploads, overwrites) that every replay writes again
   * unchanged: new data per step (a batch) must go into a tensor outside the step before
   * replay(), so a training step should have none.
   */
  readonly recordedWriteBytes: number;

  /** @internal Built by recordStep. */
  constructor(runtime: Runtime, capture: Capture, readonly result: T) {
    this.runtime = runtime;
    const device = runtime.device;
    this.textures = [...capture.textures];
    this.pinned = new Set();
    this.borrowed = new Set();
    for (const buf of capture.buffers.keys()) (runtime.pool.pin(buf) ? this.pinned : this.borrowed).add(buf);
    // A buffer that a live tensor took during the step (a result, or state made on the first
    // step) served other tensors before: those earlier uses get a buffer of their own, or a
    // replay would write them into the owner's data. (All referenced free buffers are pinned
    // by now, so the pool hands out none of them.)
    const renamed = new Map<GPUBuffer, { before: number; to: GPUBuffer }>();
    for (const buf of this.borrowed) {
      const at = capture.acquiredAt.get(buf);
      if (at === undefined || capture.buffers.get(buf)! >= at) continue;
      const to = runtime.pool.acquire(buf.size, 'recording-scratch');
      this.pinned.add(to);
      renamed.set(buf, { before: at, to });
    }
    const bufferAt = (buf: GPUBuffer, index: number): GPUBuffer => {
      const r = renamed.get(buf);
      return r && index < r.before ? r.to : buf;
    };

    // Parameter blocks, one 256-byte slot per distinct block.
    const slots = new Map<string, number>();
    let uniformBytes = 0;
    let staticBytes = 0;
    let stepBytes = 0;
    const slotOf: number[] = [];
    const dataAt: number[] = [];
    this.perStep = [];
    for (const c of capture.commands) {
      if (c.kind === 'dispatch' && c.params) {
        const key = c.params.join();
        let at = slots.get(key);
        if (at === undefined) {
          slots.set(key, (at = uniformBytes));
          uniformBytes += Math.ceil(Math.max(c.params.byteLength, 16) / UNIFORM_SLOT) * UNIFORM_SLOT;
        }
        slotOf.push(at);
      } else if (c.kind === 'write') {
        dataAt.push(staticBytes);
        staticBytes += c.data.byteLength;
      } else if (c.kind === 'perStep') {
        this.perStep.push({ offset: stepBytes, bytes: c.bytes, values: c.values });
        stepBytes += c.bytes;
      }
    }
    const makeBuffer = (size: number, usage: number, label: string, fill: (bytes: Uint8Array) => void): GPUBuffer | null => {
      if (size === 0) return null;
      const buf = device.createBuffer({ size: Math.ceil(size / 16) * 16, usage: usage | GPUBufferUsage.COPY_DST, label });
      const bytes = new Uint8Array(size);
      fill(bytes);
      device.queue.writeBuffer(buf, 0, bytes);
      return buf;
    };
    const uniforms = makeBuffer(uniformBytes, GPUBufferUsage.UNIFORM, 'recording-params', (bytes) => {
      let i = 0;
      for (const c of capture.commands) if (c.kind === 'dispatch' && c.params) bytes.set(c.params, slotOf[i++]);
    });
    const data = makeBuffer(staticBytes, GPUBufferUsage.COPY_SRC, 'recording-data', (bytes) => {
      let i = 0;
      for (const c of capture.commands) if (c.kind === 'write') bytes.set(c.data, dataAt[i++]);
    });
    this.stepBuffer = makeBuffer(stepBytes, GPUBufferUsage.COPY_SRC, 'recording-per-step', () => {});
    this.stepStaging = new Uint8Array(stepBytes);
    this.owned = [uniforms, data, this.stepBuffer].filter((b): b is GPUBuffer => b !== null);

    let slot = 0;
    let write = 0;
    let step = 0;
    this.commands = capture.commands.map((c, i): RecordedCommand => {
      switch (c.kind) {
        case 'dispatch': {
          const entries: GPUBindGroupEntry[] = c.resources.map((r, binding) => ({ binding, resource: 'buffer' in r ? { ...r, buffer: bufferAt(r.buffer, i) } : r }));
          if (c.params) entries.push({ binding: entries.length, resource: { buffer: uniforms!, offset: slotOf[slot++], size: Math.ceil(c.params.byteLength / 16) * 16 } });
          const group = device.createBindGroup({ layout: c.layout, entries, label: c.name });
          return { kind: 'dispatch', name: c.name, pipeline: c.pipeline, group, x: c.grid[0], y: c.grid[1], z: c.grid[2] };
        }
        case 'write':
          return { kind: 'copy', src: data!, srcOffset: dataAt[write++], dst: bufferAt(c.dst, i), dstOffset: 0, bytes: c.data.byteLength };
        case 'perStep': {
          const s = this.perStep[step++];
          return { kind: 'copy', src: this.stepBuffer!, srcOffset: s.offset, dst: bufferAt(c.dst, i), dstOffset: 0, bytes: s.bytes };
        }
        case 'copy':
          return { ...c, src: bufferAt(c.src, i), dst: bufferAt(c.dst, i) };
        case 'texture':
          return { ...c, src: bufferAt(c.src, i) };
      }
    });
    this.dispatches = this.commands.filter((c) => c.kind === 'dispatch').length;
    this.recordedWriteBytes = staticBytes;
    watchers(runtime).add(this);
  }

  /** Why replay() would throw, or null while the recording can replay. */
  get invalidReason(): string | null {
    if (this.disposed) return 'it was disposed';
    if (this.runtime.isLost) return 'the GPU device was lost';
    return this.invalid;
  }

  get valid(): boolean {
    return this.invalidReason === null;
  }

  /** Runs the recorded step again (per-step values recomputed) and returns `result`, which now holds its outputs. */
  replay(): T {
    const why = this.invalidReason;
    if (why) throw new GpuError(`This recorded step cannot be replayed: ${why}; record the step again`);
    if (this.runtime.capturing) throw new GpuError('A recorded step cannot be replayed while another step is being recorded');
    for (const s of this.perStep) {
      const v = s.values();
      if (v.byteLength !== s.bytes) throw new GpuError(`A recorded step's per-step values changed size (${s.bytes} bytes recorded, ${v.byteLength} now); record the step again`);
      this.stepStaging.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), s.offset);
    }
    // The previous replay, the only reader of the step buffer, was submitted before this write.
    if (this.stepBuffer) this.runtime.device.queue.writeBuffer(this.stepBuffer, 0, this.stepStaging);
    this.runtime.replayCommands(this.commands);
    return this.result;
  }

  /** Pool buffers the recording owns (its static memory plan). */
  pinnedBuffers(): GPUBuffer[] {
    return [...this.pinned];
  }

  /** Bytes of pinnedBuffers(). */
  get pinnedBytes(): number {
    let n = 0;
    for (const b of this.pinned) n += b.size;
    return n;
  }

  /** @internal */
  bufferGone(buf: GPUBuffer, why: 'released' | 'destroyed'): void {
    if (this.invalid || !(this.borrowed.has(buf) || this.pinned.has(buf))) return;
    this.invalid = `a buffer it binds was ${why} (a tensor it uses, such as a weight, an optimiser's state or one of its results, was disposed)`;
  }

  /** Gives the pinned buffers back to the pool, disposes the result tensors and frees the recording's own buffers. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    watchers(this.runtime).delete(this);
    const alive = !this.runtime.isLost;
    if (alive) for (const buf of this.pinned) this.runtime.pool.release(buf);
    this.pinned.clear();
    forEachTensor(this.result, (t) => t.dispose());
    for (const buf of this.owned) buf.destroy();
    if (alive) for (const t of this.textures) this.runtime.releaseTexture(t);
  }
}

function forEachTensor(value: unknown, fn: (t: Tensor) => void): void {
  if (value instanceof Tensor) fn(value);
  else if (Array.isArray(value)) for (const v of value) forEachTensor(v, fn);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) forEachTensor(v, fn);
}

/**
 * Runs `step` (synchronous) once for real and records every GPU command it issues. Tensors it
 * makes and does not return are disposed (as in tidy); the ones it returns (`result`) belong to
 * the recording and hold each replay's outputs. Inside `step`, one-time set-up must go through
 * Runtime.once and per-step values through Runtime.writePerStep; readbacks throw.
 */
export function recordStep<T>(step: () => T, runtime: Runtime = rt()): Recording<T> {
  const capture = new Capture();
  const set = watchers(runtime);
  runtime.beginCapture(capture);
  set.add(capture);
  let result: T;
  try {
    result = tidy(() => {
      const r = step();
      if (r instanceof Promise) {
        r.catch(() => {}); // reported here instead
        throw new Error(capture.failure ?? 'recordStep takes a synchronous step');
      }
      return r;
    });
    if (capture.failure) {
      forEachTensor(result, (t) => t.dispose());
      throw new GpuError(capture.failure);
    }
    for (const t of capture.textures) runtime.holdTexture(t);
  } finally {
    set.delete(capture);
    runtime.endCapture();
  }
  forEachTensor(result, (t) => keep(t));
  return new Recording(runtime, capture, result);
}

/**
 * Recorded steps by key (the caller's shapes, e.g. `b${batch}`): run() replays the key's
 * recording, recording the step first (and again when its recording became invalid).
 */
export class StepRecordings<T> {
  private byKey = new Map<string, Recording<T>>();

  constructor(private readonly runtime: Runtime = rt()) {}

  /** The step's result after running it: recorded (`recorded` true) or replayed. */
  run(key: string, step: () => T): { result: T; recorded: boolean } {
    const rec = this.byKey.get(key);
    if (rec?.valid) return { result: rec.replay(), recorded: false };
    rec?.dispose();
    this.byKey.delete(key);
    const fresh = recordStep(step, this.runtime);
    this.byKey.set(key, fresh);
    return { result: fresh.result, recorded: true };
  }

  /** The recording under `key`, if any. */
  get(key: string): Recording<T> | undefined {
    return this.byKey.get(key);
  }

  dispose(): void {
    for (const rec of this.byKey.values()) rec.dispose();
    this.byKey.clear();
  }
}
