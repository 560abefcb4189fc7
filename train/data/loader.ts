// The batch loader: seeded random batches for training (resumable: its state is a few
// numbers to save in a checkpoint) and whole-split passes for evaluation. Batches are
// assembled off the critical path: in a worker thread by default (or on this thread in an
// idle moment), starting as soon as the previous batch is handed out, and come back as one
// NCHW Float32Array in [-0.5, 0.5] (a single upload), or uint8.
import type { Worker } from 'node:worker_threads';
import { Rng } from '../../engine/random.js';
import type { Dataset } from './dataset.js';
import { IMAGE_SIZE } from './images.js';
import { SPLIT_NAMES, type SplitName } from './sources.js';
import { assembleBatch, type BatchFormat } from './store.js';
import { mixSeed } from './synthetic.js';
import type { WorkerReply, WorkerRequest } from './worker.js';
import { startDataWorker, terminateWorker, workersAvailable } from './workers.js';

/**
 * - `shuffle` (default): epochs over a fresh seeded permutation of the split, every image once
 *   per epoch; a batch that crosses an epoch's end continues into the next permutation.
 * - `reshuffle`: the seed's `next(iter(loader))` on a shuffled DataLoader: every batch is the
 *   first B images of a fresh random permutation (B distinct images, no epochs); a batch larger
 *   than the split continues into another permutation.
 * - `replacement`: every index drawn independently and uniformly.
 */
export type Sampling = 'shuffle' | 'reshuffle' | 'replacement';
export const SAMPLINGS: readonly Sampling[] = ['shuffle', 'reshuffle', 'replacement'];

/** Where batches are assembled: a worker thread, this thread while idle, or on demand. */
export type Prefetch = 'worker' | 'inline' | 'none';

export interface LoaderOptions {
  /** The split random batches come from; default 'train'. */
  split?: SplitName;
  batchSize?: number;
  seed?: number;
  sampling?: Sampling;
  format?: BatchFormat;
  /** Default 'worker' (falls back to 'inline' where workers can't start). */
  prefetch?: Prefetch;
}

/** Everything needed to continue the same batch sequence (JSON-serialisable). */
export interface LoaderState {
  version: 1;
  split: SplitName;
  batchSize: number;
  seed: number;
  sampling: Sampling;
  /** Generator state: at the start of the current epoch (shuffle) or now (replacement). */
  rng: number[];
  epoch: number;
  /** Position in the current epoch's permutation (shuffle). */
  position: number;
  /** Batches handed out so far. */
  batches: number;
}

export interface Batch<T extends Float32Array | Uint8Array = Float32Array> {
  data: T;
  /** Number of images (the last evaluation batch may be short). */
  count: number;
  /** Store indices of the images. */
  indices: Uint32Array;
}

/** Draws the index sequence; its state is what LoaderState records. */
class Sampler {
  private rng: Rng;
  private epochStart: number[];
  private perm: Uint32Array | null = null;
  epoch = 0;
  position = 0;

  constructor(
    private readonly n: number,
    readonly seed: number,
    readonly sampling: Sampling,
  ) {
    if (n <= 0) throw new Error('cannot sample batches from an empty split');
    this.rng = new Rng(mixSeed(seed, 0x10ad));
    this.epochStart = this.rng.getState();
  }

  draw(count: number, out: Uint32Array): void {
    if (this.sampling === 'replacement') {
      for (let k = 0; k < count; k++) out[k] = this.rng.int(this.n);
      return;
    }
    if (this.sampling === 'reshuffle') {
      for (let k = 0; k < count; k += this.n) this.firstOfPermutation(Math.min(this.n, count - k), out.subarray(k));
      return;
    }
    for (let k = 0; k < count; k++) {
      if (!this.perm) {
        this.epochStart = this.rng.getState();
        this.perm = this.rng.permutation(this.n);
      }
      out[k] = this.perm[this.position++];
      if (this.position === this.n) {
        this.perm = null;
        this.position = 0;
        this.epoch++;
      }
    }
  }

  /**
   * The first `m` entries of a fresh uniform permutation of 0..n-1: a forward Fisher-Yates
   * stopped after m swaps (the same distribution as shuffling all n, in O(m); swapped entries
   * live in a map instead of an n-element array).
   */
  private firstOfPermutation(m: number, out: Uint32Array): void {
    const moved = new Map<number, number>();
    for (let i = 0; i < m; i++) {
      const j = i + this.rng.int(this.n - i);
      const vi = moved.get(i) ?? i;
      const vj = moved.get(j) ?? j;
      out[i] = vj;
      moved.set(j, vi);
    }
  }

  getState(): { rng: number[]; epoch: number; position: number } {
    if (this.sampling !== 'shuffle') return { rng: this.rng.getState(), epoch: 0, position: 0 };
    // Mid-epoch: the state at the epoch's start regenerates the same permutation.
    return this.perm ? { rng: [...this.epochStart], epoch: this.epoch, position: this.position } : { rng: this.rng.getState(), epoch: this.epoch, position: 0 };
  }

  setState(s: { rng: number[]; epoch: number; position: number }): void {
    this.rng.setState(s.rng);
    this.epoch = s.epoch;
    this.position = 0;
    this.perm = null;
    if (this.sampling === 'shuffle' && s.position > 0) {
      if (!(Number.isInteger(s.position) && s.position < this.n)) throw new Error(`loader state position ${s.position} out of range for ${this.n} images`);
      this.epochStart = this.rng.getState();
      this.perm = this.rng.permutation(this.n);
      this.position = s.position;
    }
  }
}

interface Pending<T> {
  id: number;
  indices: Uint32Array;
  promise: Promise<T>;
}

/**
 * Loads batches from a dataset. One loader owns one worker (when prefetch is 'worker'); close()
 * stops it. Training: `await loader.next()`. Evaluation: `for await (const b of loader.iterate('valid'))`.
 */
export class DataLoader<T extends Float32Array | Uint8Array = Float32Array> {
  readonly split: SplitName;
  readonly batchSize: number;
  readonly format: BatchFormat;
  readonly prefetch: Prefetch;
  private sampler: Sampler | null;
  private readonly seed: number;
  private readonly sampling: Sampling;
  private batches = 0;
  private pending: (Pending<T> & { stateBefore: LoaderState }) | null = null;
  private worker: Worker | null = null;
  private nextId = 1;
  private waiting = new Map<number, { resolve: (d: T) => void; reject: (e: Error) => void }>();
  private closed = false;
  private workerError: Error | null = null;

  constructor(
    readonly dataset: Dataset,
    opts: LoaderOptions = {},
  ) {
    this.split = opts.split ?? 'train';
    if (!SPLIT_NAMES.includes(this.split)) throw new Error(`unknown split ${JSON.stringify(this.split)}`);
    this.batchSize = opts.batchSize ?? 256;
    if (!(Number.isInteger(this.batchSize) && this.batchSize >= 1)) throw new Error(`batch size must be a positive integer, got ${this.batchSize}`);
    this.format = opts.format ?? 'float32';
    let prefetch = opts.prefetch ?? 'worker';
    if (prefetch === 'worker' && !workersAvailable()) prefetch = 'inline';
    this.prefetch = prefetch;
    this.seed = opts.seed ?? 0;
    this.sampling = opts.sampling ?? 'shuffle';
    if (!SAMPLINGS.includes(this.sampling)) throw new Error(`unknown sampling ${JSON.stringify(this.sampling)}`);
    const n = dataset.splits[this.split].length;
    this.sampler = n > 0 ? new Sampler(n, this.seed, this.sampling) : null; // next() throws on an empty split
  }

  /** The NCHW shape of a full batch. */
  get shape(): [number, number, number, number] {
    return [this.batchSize, 3, IMAGE_SIZE, IMAGE_SIZE];
  }

  /** The next random batch (already assembled if the previous call's prefetch has finished). */
  async next(): Promise<T> {
    return (await this.nextBatch()).data;
  }

  /** The next random batch with the store indices of its images. */
  async nextBatch(): Promise<Batch<T>> {
    this.checkOpen();
    if (!this.sampler) throw new Error(`split ${this.split} is empty`);
    const cur = this.pending ?? this.requestRandom();
    this.batches++;
    this.pending = this.prefetch === 'none' ? null : this.requestRandom(); // off the critical path
    const data = await cur.promise;
    return { data, count: cur.indices.length, indices: cur.indices };
  }

  /** The state after the batches handed out so far (not counting a prefetched one). */
  getState(): LoaderState {
    if (this.pending) return { ...this.pending.stateBefore, batches: this.batches };
    return this.snapshot();
  }

  /** Continues from a saved state: the next batches are those the saved run would have seen. */
  setState(s: LoaderState): void {
    if (s?.version !== 1) throw new Error('loader state: unknown version');
    if (s.split !== this.split || s.batchSize !== this.batchSize || s.sampling !== this.sampling || s.seed !== this.seed) {
      throw new Error(
        `loader state is for split ${s.split}, batch ${s.batchSize}, ${s.sampling}, seed ${s.seed}; this loader has ${this.split}, ${this.batchSize}, ${this.sampling}, seed ${this.seed}`,
      );
    }
    this.sampler?.setState(s);
    this.batches = s.batches;
    if (this.pending) this.forget(this.pending);
    this.pending = null;
  }

  /**
   * Every image of a split once, in order, in batches of `batchSize` (the last may be short),
   * the next batch prepared while the caller works on the current one.
   */
  async *iterate(split: SplitName, opts: { batchSize?: number } = {}): AsyncGenerator<Batch<T>> {
    this.checkOpen();
    const idx = this.dataset.splits[split];
    if (!idx) throw new Error(`unknown split ${JSON.stringify(split)}`);
    const bs = opts.batchSize ?? this.batchSize;
    let start = 0;
    let cur: Pending<T> | null = idx.length ? this.request(idx.slice(0, Math.min(bs, idx.length))) : null;
    try {
      while (cur) {
        start += cur.indices.length;
        const following = start < idx.length ? this.request(idx.slice(start, Math.min(start + bs, idx.length))) : null;
        const data = await cur.promise;
        yield { data, count: cur.indices.length, indices: cur.indices };
        cur = following;
      }
    } finally {
      if (cur) this.forget(cur);
    }
  }

  /** Stops the worker; pending batches are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending = null;
    for (const w of this.waiting.values()) w.reject(new Error('loader closed'));
    this.waiting.clear();
    const w = this.worker;
    this.worker = null;
    if (w) await terminateWorker(w);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('loader is closed');
    if (this.workerError) throw this.workerError;
  }

  private snapshot(): LoaderState {
    const s = this.sampler ? this.sampler.getState() : { rng: [0, 0, 0, 1], epoch: 0, position: 0 };
    return { version: 1, split: this.split, batchSize: this.batchSize, seed: this.seed, sampling: this.sampling, ...s, batches: this.batches };
  }

  private requestRandom(): Pending<T> & { stateBefore: LoaderState } {
    const stateBefore = this.snapshot();
    const pos = new Uint32Array(this.batchSize);
    this.sampler!.draw(this.batchSize, pos);
    const split = this.dataset.splits[this.split];
    const indices = pos.map((p) => split[p]);
    return { ...this.request(indices), stateBefore };
  }

  private request(indices: Uint32Array): Pending<T> {
    const id = this.nextId++;
    if (this.prefetch === 'worker') {
      const w = this.ensureWorker();
      const promise = new Promise<T>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
      promise.catch(() => {}); // a forgotten prefetch must not become an unhandled rejection
      w.ref();
      const msg: WorkerRequest = { type: 'batch', id, indices, format: this.format };
      w.postMessage(msg);
      return { id, indices, promise };
    }
    if (this.prefetch === 'inline') {
      // Assembled on this thread at the next idle moment (while the caller awaits the GPU).
      const promise = new Promise<T>((resolve, reject) => {
        setImmediate(() => {
          try {
            resolve(assembleBatch(this.dataset.store, indices, this.format) as T);
          } catch (e) {
            reject(e);
          }
        });
      });
      promise.catch(() => {});
      return { id, indices, promise };
    }
    let promise: Promise<T>;
    try {
      promise = Promise.resolve(assembleBatch(this.dataset.store, indices, this.format) as T);
    } catch (e) {
      promise = Promise.reject(e);
      promise.catch(() => {});
    }
    return { id, indices, promise };
  }

  private forget(p: Pending<T>): void {
    this.waiting.delete(p.id);
    if (this.waiting.size === 0) this.worker?.unref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = startDataWorker();
    const init: WorkerRequest = { type: 'store', store: this.dataset.store };
    w.postMessage(init);
    w.on('message', (m: WorkerReply) => {
      const waiter = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) w.unref();
      if (!waiter) return; // forgotten prefetch
      if (m.type === 'batch') waiter.resolve(m.data as T);
      else if (m.type === 'error') waiter.reject(new Error(`data worker: ${m.error}`));
    });
    const fail = (e: Error): void => {
      this.workerError = e;
      for (const x of this.waiting.values()) x.reject(e);
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => {
      if (!this.closed) fail(new Error(`data worker exited (code ${code})`));
    });
    this.worker = w;
    return w;
  }
}
