// Datasets: the images (a store) and the train/valid/test splits as index lists into it.
// openDataset() is the one entry point: synthetic faces (the default, no files), CelebA in its
// official layout, or any folder of PNG/JPEG images (prepared into a packed cache first).
import { Rng } from '../../engine/random.js';
import { IMAGE_VALUES, u8ToFloat, type Preprocess } from './images.js';
import { availableParallelism } from 'node:os';
import { prepareData, readCacheData, runWorkers, type PrepareOptions, type PrepareResult } from './prepare.js';
import { SPLIT_NAMES, type SplitName } from './sources.js';
import { readImages, renderRange, type StoreSpec } from './store.js';
import { workersAvailable } from './workers.js';
import { SYNTHETIC_DEFAULTS, mixSeed } from './synthetic.js';

export type DataSourceKind = 'synthetic' | 'celeba' | 'folder';

export interface SyntheticConfig {
  /** Generator seed; default 0. */
  seed?: number;
  /** Images per split; defaults 50,000 / 2,000 / 2,000. */
  train?: number;
  valid?: number;
  test?: number;
  /**
   * Keep rendered faces in shared memory so each is drawn once (default true; memory grows
   * to 12 KiB per image as faces are first used).
   */
  memoize?: boolean;
  /**
   * Render every face up front on all cores (openDataset only; needs memoize) so that no batch
   * waits for drawing (about 2,500 faces/s per core). Default: on machines with 4 or more
   * cores; otherwise faces are drawn on first use, in the loader's worker.
   */
  prerender?: boolean;
}

export interface DataConfig {
  /** 'auto' (default): synthetic without a path; with one, CelebA if the layout matches, else a folder. */
  source?: DataSourceKind | 'auto';
  /** Root folder of CelebA or of the images. */
  path?: string;
  preprocess?: Partial<Preprocess>;
  cacheDir?: string;
  /** Decode threads for prepare; default all cores. */
  workers?: number;
  progress?: PrepareOptions['progress'];
  signal?: AbortSignal;
  /** A seeded random subset per split, e.g. { train: 55000, valid: 5500 }. */
  subset?: Partial<Record<SplitName, number>>;
  subsetSeed?: number;
  /** Folder sources (no partition file): train/valid/test fractions; default [0.9, 0.05, 0.05]. */
  splitFractions?: [number, number, number];
  splitSeed?: number;
  synthetic?: SyntheticConfig;
}

export interface Dataset {
  kind: DataSourceKind;
  /** Where the images are. */
  store: StoreSpec;
  /** Store indices of each split, ascending. */
  splits: Record<SplitName, Uint32Array>;
  /** Source file of each store index (file-backed datasets). */
  files: string[] | null;
  /** What was loaded, for logs and run records. */
  description: string;
  /** The prepare step's result (file-backed datasets). */
  prepared: PrepareResult | null;
}

export { SYNTHETIC_DEFAULTS };

/** Synthetic faces: train, valid and test are disjoint index ranges of one generator. */
export function syntheticDataset(cfg: SyntheticConfig = {}): Dataset {
  const seed = cfg.seed ?? SYNTHETIC_DEFAULTS.seed;
  const counts = [cfg.train ?? SYNTHETIC_DEFAULTS.train, cfg.valid ?? SYNTHETIC_DEFAULTS.valid, cfg.test ?? SYNTHETIC_DEFAULTS.test];
  for (const c of counts) if (!(Number.isInteger(c) && c >= 0)) throw new Error(`synthetic split sizes must be integers >= 0, got ${counts}`);
  const count = counts[0] + counts[1] + counts[2];
  const store: StoreSpec =
    cfg.memoize === false
      ? { kind: 'synthetic', seed, count }
      : { kind: 'synthetic', seed, count, memo: new SharedArrayBuffer(Math.max(1, count * IMAGE_VALUES)), rendered: new SharedArrayBuffer(Math.max(1, count)) };
  const range = (a: number, n: number) => Uint32Array.from({ length: n }, (_, i) => a + i);
  return {
    kind: 'synthetic',
    store,
    splits: { train: range(0, counts[0]), valid: range(counts[0], counts[1]), test: range(counts[0] + counts[1], counts[2]) },
    files: null,
    description: `synthetic faces (seed ${seed}): ${counts[0]} train / ${counts[1]} valid / ${counts[2]} test`,
    prepared: null,
  };
}

/** A seeded split of `indices` by fractions; each part ascending. */
export function seededSplit(indices: Uint32Array, fractions: [number, number, number], seed: number): Record<SplitName, Uint32Array> {
  if (fractions.some((f) => !(f >= 0)) || fractions.reduce((a, b) => a + b, 0) <= 0) {
    throw new Error(`split fractions must be >= 0 and not all 0, got ${fractions}`);
  }
  const total = fractions[0] + fractions[1] + fractions[2];
  const n = indices.length;
  const nTrain = Math.round((n * fractions[0]) / total);
  const nValid = Math.min(n - nTrain, Math.round((n * fractions[1]) / total));
  const perm = new Rng(mixSeed(seed, 0x5911)).permutation(n);
  const pick = (a: number, b: number) => Uint32Array.from(perm.subarray(a, b), (p) => indices[p]).sort();
  return { train: pick(0, nTrain), valid: pick(nTrain, nTrain + nValid), test: pick(nTrain + nValid, n) };
}

/** A seeded random subset of `count` of `indices` (ascending); all of them if count >= length. */
export function seededSubset(indices: Uint32Array, count: number, seed: number, salt = 0): Uint32Array {
  if (!(Number.isInteger(count) && count >= 0)) throw new Error(`subset size must be an integer >= 0, got ${count}`);
  if (count >= indices.length) return indices;
  const perm = new Rng(mixSeed(seed, salt)).permutation(indices.length);
  return Uint32Array.from(perm.subarray(0, count), (p) => indices[p]).sort();
}

/**
 * Opens the configured dataset: synthetic faces when no path is given, otherwise the prepared
 * cache of CelebA or an image folder (preparing it first if needed).
 */
export async function openDataset(cfg: DataConfig = {}): Promise<Dataset> {
  const source = cfg.source ?? 'auto';
  let ds: Dataset;
  if (source === 'synthetic' || (source === 'auto' && !cfg.path)) {
    ds = syntheticDataset(cfg.synthetic);
    const prerender = cfg.synthetic?.prerender ?? availableParallelism() >= 4;
    if (prerender && cfg.synthetic?.memoize !== false) await prerenderSynthetic(ds, { workers: cfg.workers, signal: cfg.signal });
  } else {
    if (!cfg.path) throw new Error(`data source ${source} needs a path`);
    const prepared = await prepareData(cfg.path, {
      kind: source === 'auto' ? 'auto' : source,
      preprocess: cfg.preprocess,
      cacheDir: cfg.cacheDir,
      workers: cfg.workers,
      progress: cfg.progress,
      signal: cfg.signal,
    });
    ds = cachedDataset(prepared, cfg);
  }
  if (cfg.subset) {
    const splits = { ...ds.splits };
    for (const [i, name] of SPLIT_NAMES.entries()) {
      const k = cfg.subset[name];
      if (k !== undefined) splits[name] = seededSubset(splits[name], k, cfg.subsetSeed ?? 0, i + 1);
    }
    ds = { ...ds, splits, description: `${ds.description}; subset ${splitCounts(splits)} (seed ${cfg.subsetSeed ?? 0})` };
  }
  return ds;
}

function splitCounts(s: Record<SplitName, Uint32Array>): string {
  return `${s.train.length} train / ${s.valid.length} valid / ${s.test.length} test`;
}

/** A dataset over a prepared cache (its images read into shared memory). */
export function cachedDataset(prepared: PrepareResult, cfg: Pick<DataConfig, 'splitFractions' | 'splitSeed'> = {}): Dataset {
  const { header, images } = readCacheData(prepared.headerPath);
  const byCode: number[][] = [[], [], []];
  const unassigned: number[] = [];
  for (let i = 0; i < header.count; i++) {
    const ch = header.splits[i];
    if (ch === '0' || ch === '1' || ch === '2') byCode[ch.charCodeAt(0) - 48].push(i);
    else if (ch === '-') unassigned.push(i); // 'x': skipped
  }
  let splits: Record<SplitName, Uint32Array> = { train: Uint32Array.from(byCode[0]), valid: Uint32Array.from(byCode[1]), test: Uint32Array.from(byCode[2]) };
  if (unassigned.length) {
    const extra = seededSplit(Uint32Array.from(unassigned), cfg.splitFractions ?? [0.9, 0.05, 0.05], cfg.splitSeed ?? 0);
    const merge = (a: Uint32Array, b: Uint32Array) => (a.length ? Uint32Array.from([...a, ...b]).sort() : b);
    splits = { train: merge(splits.train, extra.train), valid: merge(splits.valid, extra.valid), test: merge(splits.test, extra.test) };
  }
  const store: StoreSpec = { kind: 'shared', buffer: images.buffer as SharedArrayBuffer, byteOffset: images.byteOffset, count: header.count };
  const skippedNote = header.skipped.length ? `, ${header.skipped.length} unreadable images skipped` : '';
  return {
    kind: header.source.kind,
    store,
    splits,
    files: header.files,
    description: `${header.source.kind} ${header.source.root} (${header.preprocess.mode}/${header.preprocess.filter}): ${splitCounts(splits)}${skippedNote}`,
    prepared,
  };
}

/**
 * Images of a split, synchronously on this thread: positions `which` (or the first `which`)
 * as NCHW float32 in [-0.5, 0.5]. For fixed visualisation batches.
 */
export function getImages(ds: Dataset, split: SplitName, which: number | ArrayLike<number>): Float32Array {
  const s = ds.splits[split];
  const pos = typeof which === 'number' ? Array.from({ length: Math.min(which, s.length) }, (_, i) => i) : Array.from(which);
  const idx = pos.map((p) => {
    if (!(p >= 0 && p < s.length)) throw new Error(`${split} has ${s.length} images, asked for position ${p}`);
    return s[p];
  });
  const u8 = new Uint8Array(idx.length * IMAGE_VALUES);
  readImages(ds.store, idx, u8);
  return u8ToFloat(u8);
}

/**
 * Renders all faces of a memoised synthetic dataset into its shared memory, on `workers`
 * threads (default all cores), so that no batch waits for drawing.
 */
export async function prerenderSynthetic(ds: Dataset, opts: { workers?: number; signal?: AbortSignal } = {}): Promise<void> {
  const store = ds.store;
  if (store.kind !== 'synthetic' || !store.memo) throw new Error('prerenderSynthetic needs a memoised synthetic dataset');
  const unit = 512;
  const units = Array.from({ length: Math.ceil(store.count / unit) }, (_, i) => i);
  const n = Math.min(opts.workers ?? availableParallelism(), units.length);
  if (n === 0 || !workersAvailable()) {
    renderRange(store, 0, store.count);
    return;
  }
  await runWorkers(n, units, (u) => ({ type: 'render', id: u, store, start: u * unit, end: (u + 1) * unit }), () => {}, opts.signal);
}
