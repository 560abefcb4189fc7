// Tensors: a shape, a dtype and a reference-counted GPU buffer. Tensors are immutable values
// (optimisers are the one place that writes into a buffer in place), so views such as
// reshape and autograd's saved activations share storage by taking another reference.
import { type Runtime, rt } from './runtime.js';
import { globalRng, type Rng } from './random.js';
import { dispatchFill } from './fill.js';
import { f16Value, toHalfBits } from './half.js';

/** Element types. f16 tensors (devices with shader-f16 only) hold IEEE half bits. */
export type DType = 'f32' | 'f16' | 'i32' | 'u32';
/** The floating-point element types (what elementwise ops and autograd take). */
export type FloatDType = 'f32' | 'f16';
/** The CPU side of a dtype: f16 values travel as their half bits (Node 20 has no Float16Array). */
export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f16'
    ? Uint16Array
    : D extends 'i32'
      ? Int32Array
      : Uint32Array;
export type AnyTypedArray = Float32Array | Uint16Array | Int32Array | Uint32Array;

/**
 * Bytes a tensor of `size` elements occupies: whole 4-byte words (writeBuffer and the word-wise
 * kernels work in words), so an odd-length f16 tensor has 2 padding bytes at its end.
 */
export function byteSize(size: number, dtype: DType): number {
  return dtype === 'f16' ? Math.ceil(size / 2) * 4 : size * 4;
}

/** Throws unless `runtime`'s device can hold f16 tensors (WebGPU feature shader-f16). */
export function assertF16Supported(what: string, runtime: Runtime = rt()): void {
  if (!runtime.caps.shaderF16) {
    throw new Error(`${what}: f16 tensors need a device with shader-f16, which ${runtime.caps.description} does not have`);
  }
}

/**
 * One GPU buffer shared by every tensor that views it; back to its own device's pool at zero
 * references. A tensor disposed after its device was lost and init() made a new one must not
 * hand its dead buffer to the new device's pool (bound there, it fails validation).
 */
export class Storage {
  private refs = 1;
  private readonly runtime: Runtime;
  constructor(
    readonly buffer: GPUBuffer,
    readonly bytes: number,
    runtime: Runtime = rt(),
  ) {
    this.runtime = runtime;
  }
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0 && !this.runtime.isLost) this.runtime.pool.release(this.buffer);
  }
}

/** A node of the autograd graph: how to turn the output's gradient into the inputs'. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** Tensors kept for backward (each holds its own storage reference). */
  saved: Tensor[];
  /** Gradients for each input (null where an input needs none). Reads saved tensors only from `saved`. */
  backward: (grad: Tensor, saved: Tensor[]) => (Tensor | null)[];
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly size: number;
  readonly dtype: DType;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  private storage: Storage | null;

  constructor(storage: Storage, shape: readonly number[], dtype: DType = 'f32') {
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
    this.dtype = dtype;
    this.storage = storage;
    if (storage.bytes < byteSize(this.size, dtype)) {
      throw new Error(`Tensor of shape [${shape}] needs ${byteSize(this.size, dtype)} bytes, storage has ${storage.bytes}`);
    }
    trackTensor(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  /** The GPU buffer; throws if the tensor was disposed. */
  get buffer(): GPUBuffer {
    return this.liveStorage().buffer;
  }

  /** The underlying storage (for views); throws if the tensor was disposed. */
  liveStorage(): Storage {
    if (!this.storage) {
      throw new Error(`${this.describe()} was disposed and cannot be used again`);
    }
    return this.storage;
  }

  describe(): string {
    return `Tensor #${this.id} ${this.dtype}[${this.shape.join(', ')}]${this.node ? ` (from ${this.node.op})` : ''}`;
  }

  toString(): string {
    return this.describe();
  }

  /** Releases this tensor's reference to its buffer. Safe to call twice. */
  dispose(): void {
    if (!this.storage) return;
    this.storage.release();
    this.storage = null;
    untrackTensor(this);
  }

  /** Copies the values back to the CPU (an f16 tensor's as half bits: see half.ts fromHalfBits). */
  async read(): Promise<AnyTypedArray> {
    const elementBytes = this.dtype === 'f16' ? 2 : 4;
    const bytes = await rt().read(this.buffer, this.size * elementBytes);
    return this.dtype === 'f32'
      ? new Float32Array(bytes)
      : this.dtype === 'f16'
        ? new Uint16Array(bytes)
        : this.dtype === 'i32'
          ? new Int32Array(bytes)
          : new Uint32Array(bytes);
  }

  /** The single value of a one-element tensor (an f16 one's value, not its bits). */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got ${this.describe()}`);
    const v = (await this.read())[0];
    return this.dtype === 'f16' ? f16Value(v) : v;
  }

  /** A tensor with the same values and no autograd history (shares storage). */
  detach(): Tensor {
    return new Tensor(this.liveStorage().retain(), this.shape, this.dtype);
  }

  /** Marks this tensor as a leaf whose gradient is accumulated into `.grad`. */
  requireGrad(on = true): this {
    if (on && this.dtype !== 'f32' && this.dtype !== 'f16') throw new Error(`Only f32 and f16 tensors can require gradients, not ${this.describe()}`);
    this.requiresGrad = on;
    return this;
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`Invalid shape [${shape.join(', ')}]: dimensions must be non-negative integers`);
    n *= d;
  }
  return n;
}

/** Makes a new tensor that views `t`'s storage with another reference (no autograd node). */
export function share(t: Tensor, shape: readonly number[] = t.shape): Tensor {
  return new Tensor(t.liveStorage().retain(), shape, t.dtype);
}

/** Allocates an uninitialised tensor. */
export function empty(shape: readonly number[], dtype: DType = 'f32', runtime: Runtime = rt()): Tensor {
  if (dtype === 'f16') assertF16Supported('empty', runtime);
  const bytes = Math.max(4, byteSize(shapeSize(shape), dtype));
  return new Tensor(new Storage(runtime.pool.acquire(bytes), bytes, runtime), shape, dtype);
}

/**
 * A tensor holding `data` (a typed array, or numbers converted to `dtype`). For f16, a
 * Uint16Array is taken as half bits and numbers are rounded to nearest even (half.ts).
 */
export function tensor(
  data: ArrayLike<number> | AnyTypedArray,
  shape: readonly number[] = [data.length],
  dtype?: DType,
): Tensor {
  const dt: DType =
    dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : data instanceof Uint16Array ? 'f16' : 'f32');
  const n = shapeSize(shape);
  if (data.length !== n) {
    throw new Error(`tensor(): ${data.length} values do not fill shape [${shape.join(', ')}] (${n} elements)`);
  }
  if (dt === 'f16') assertF16Supported('tensor()');
  const typed =
    dt === 'f32'
      ? data instanceof Float32Array ? data : Float32Array.from(data)
      : dt === 'f16'
        ? data instanceof Uint16Array ? data : toHalfBits(data)
        : dt === 'i32'
          ? data instanceof Int32Array ? data : Int32Array.from(data)
          : data instanceof Uint32Array ? data : Uint32Array.from(data);
  const bytes = Math.max(4, byteSize(n, dt));
  const buf = rt().upload(typed);
  return new Tensor(new Storage(buf, bytes), shape, dt);
}

export function full(shape: readonly number[], value: number, dtype: DType = 'f32'): Tensor {
  const t = empty(shape, dtype);
  dispatchFill(t, value);
  return t;
}

export const zeros = (shape: readonly number[], dtype: DType = 'f32') => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'f32') => full(shape, 1, dtype);

/** Uniform in [low, high) from a seeded generator (the global one by default). */
export function rand(shape: readonly number[], opts: { low?: number; high?: number; rng?: Rng } = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  return tensor(rng.uniformArray(shapeSize(shape), opts.low ?? 0, opts.high ?? 1), shape);
}

/** Normal(mean, std) from a seeded generator (the global one by default). */
export function randn(shape: readonly number[], opts: { mean?: number; std?: number; rng?: Rng } = {}): Tensor {
  const rng = opts.rng ?? globalRng;
  return tensor(rng.normalArray(shapeSize(shape), opts.mean ?? 0, opts.std ?? 1), shape);
}

// ---- Scopes: every tensor made inside tidy() is disposed at its end unless returned or kept.

type Scope = Set<Tensor>;
const scopes: Scope[] = [];

function trackTensor(t: Tensor): void {
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

function untrackTensor(t: Tensor): void {
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i].delete(t)) return;
}

/** Keeps `t` alive past every enclosing tidy(). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

export type TensorContainer = Tensor | TensorContainer[] | { [k: string]: TensorContainer } | number | string | boolean | null | undefined | void;

function collect(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) collect(v, out);
}

/**
 * Runs `fn` and disposes every tensor it created except those in its result (tensors,
 * arrays or objects of tensors), which move to the enclosing scope. Saved activations of
 * graphs that nothing kept can reach are released too. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = new Set();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy() takes a synchronous function');
  } catch (e) {
    scopes.splice(scopes.indexOf(scope), 1);
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.splice(scopes.indexOf(scope), 1);
  const kept = new Set<Tensor>();
  collect(result, kept);
  const reachable = graphOf(kept);
  for (const t of scope) {
    if (kept.has(t)) {
      trackTensor(t);
      continue;
    }
    t.dispose();
    if (t.node && !reachable.has(t.node)) releaseNode(t);
  }
  return result;
}

/** Nodes reachable backwards from `roots`. */
export function graphOf(roots: Iterable<Tensor>): Set<GradNode> {
  const seen = new Set<GradNode>();
  const stack = [...roots];
  while (stack.length) {
    const t = stack.pop()!;
    const n = t.node;
    if (!n || seen.has(n)) continue;
    seen.add(n);
    for (const i of n.inputs) stack.push(i);
  }
  return seen;
}

/** Drops a tensor's autograd node and the activations it saved. */
export function releaseNode(t: Tensor): void {
  const n = t.node;
  if (!n) return;
  for (const s of n.saved) s.dispose();
  n.saved = [];
  n.inputs = [];
  t.node = null;
}

/** Live and pooled GPU memory. */
export function memory() {
  return rt().pool.stats();
}

/** Checks that every tensor has dtype `dtype`; names the op and the offending tensor. */
export function assertDType(op: string, dtype: DType, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== dtype) throw new Error(`${op}: expected ${dtype}, got ${t.describe()}`);
  }
}
