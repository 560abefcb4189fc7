// The one-time prepare step: decode every source image (on all cores, in worker threads),
// crop and resize it to 3x64x64, and pack the results into one uint8 file with a JSON header.
//
// Files, in the cache folder (default <data>/.vqvae-cache/, else ./.cache/vqvae-data/):
//   <name>.u8            count x 3 x 64 x 64 uint8, NCHW, image i at byte i * 12288
//   <name>.json          the header (CacheHeader): files, splits, preprocessing, fingerprint,
//                        skipped images; written last, so its presence marks a complete cache
//   <name>.u8.partial    while preparing; <name>.progress.json records finished chunks, so an
//                        interrupted prepare resumes where it stopped
// <name> = <kind>-<mode>-<filter>-<key>, key = hash(kind, fingerprint, preprocessing, size):
// the same source and preprocessing give the same name, and a cache hit.
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
  accessSync,
} from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DEFAULT_PREPROCESS, IMAGE_SIZE, IMAGE_VALUES, isPreprocessMode, isResizeFilter, type Preprocess } from './images.js';
import { listSource, type SourceKind, type SourceListing } from './sources.js';
import { prepareFiles, type WorkerReply, type WorkerRequest } from './worker.js';
import { startDataWorker, terminateWorker, workersAvailable } from './workers.js';

export const CACHE_FORMAT = 'vqvae-webgpu-image-cache';
export const CACHE_VERSION = 1;

export interface SkippedImage {
  index: number;
  file: string;
  error: string;
}

export interface CacheHeader {
  format: typeof CACHE_FORMAT;
  version: number;
  key: string;
  created: string;
  source: {
    kind: SourceKind;
    root: string;
    partitionFile: string | null;
    fingerprint: string;
    notes: string[];
  };
  preprocess: Preprocess;
  size: number;
  layout: 'NCHW uint8';
  bytesPerImage: number;
  count: number;
  dataFile: string;
  /** Source files (relative to the root), image i is files[i]. */
  files: string[];
  /** One character per image: '0' train, '1' valid, '2' test, '-' unassigned, 'x' skipped. */
  splits: string;
  /** Images that could not be read: their slots hold zeros and no split uses them. */
  skipped: SkippedImage[];
  /** Listed in the partition file but not on disk. */
  missing: string[];
  stats: { seconds: number; imagesPerSecond: number; workers: number };
}

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';
export interface ProgressInfo {
  done: number;
  total: number;
  skipped: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface PrepareOptions {
  preprocess?: Partial<Preprocess>;
  /** Folder for the cache; default <root>/.vqvae-cache, or ./.cache/vqvae-data if that is read-only. */
  cacheDir?: string;
  /** Decoding threads; default: all cores. 0 decodes on the calling thread. */
  workers?: number;
  /** Images per work unit (and per resume record); default 128. */
  chunkSize?: number;
  /** 'auto': a bar on a TTY, periodic lines otherwise; or a callback. */
  progress?: ProgressMode | ((p: ProgressInfo) => void);
  /** Where progress text goes; default process.stderr. */
  progressStream?: NodeJS.WriteStream;
  /** Re-prepare even if a matching cache exists. */
  force?: boolean;
  /** Stops between chunks; what is done so far is kept for resuming. */
  signal?: AbortSignal;
  /** Source kind; default: CelebA if the layout matches, otherwise a folder of images. */
  kind?: SourceKind | 'auto';
}

export interface PrepareResult {
  dataPath: string;
  headerPath: string;
  header: CacheHeader;
  cacheHit: boolean;
  /** Images taken over from an interrupted earlier run. */
  resumed: number;
  /** Images decoded by this call (0 on a cache hit). */
  decoded: number;
  skipped: SkippedImage[];
  missing: string[];
  seconds: number;
  /** Decode throughput of this call (images decoded / seconds). */
  imagesPerSecond: number;
  listing: SourceListing;
}

export function resolvePreprocess(p: Partial<Preprocess> = {}): Preprocess {
  const mode = p.mode ?? DEFAULT_PREPROCESS.mode;
  const filter = p.filter ?? DEFAULT_PREPROCESS.filter;
  if (!isPreprocessMode(mode)) throw new Error(`unknown preprocessing mode ${JSON.stringify(mode)} (squash, crop148, crop178, center)`);
  if (!isResizeFilter(filter)) throw new Error(`unknown resize filter ${JSON.stringify(filter)} (bilinear, area)`);
  return { mode, filter };
}

/** The cache key for a listing + preprocessing. */
export function cacheKey(listing: SourceListing, pre: Preprocess): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: CACHE_VERSION, kind: listing.kind, fp: listing.fingerprint, pre, size: IMAGE_SIZE }));
  return h.digest('hex').slice(0, 16);
}

function writable(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The cache folder for a data root: <root>/.vqvae-cache, else ./.cache/vqvae-data/<hash>. */
export function defaultCacheDir(root: string): string {
  const beside = join(root, '.vqvae-cache');
  if (writable(beside)) return beside;
  const h = createHash('sha256').update(resolve(root)).digest('hex').slice(0, 12);
  return resolve('.cache', 'vqvae-data', h);
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value));
  renameSync(tmp, path);
}

/** Reads and checks a cache header; null if absent, unreadable or not matching `key`. */
export function readCacheHeader(headerPath: string, key?: string): CacheHeader | null {
  let h: CacheHeader;
  try {
    h = JSON.parse(readFileSync(headerPath, 'utf8')) as CacheHeader;
  } catch {
    return null;
  }
  if (h?.format !== CACHE_FORMAT || h.version !== CACHE_VERSION) return null;
  if (key !== undefined && h.key !== key) return null;
  if (!Array.isArray(h.files) || typeof h.splits !== 'string' || h.splits.length !== h.count || h.files.length !== h.count) return null;
  if (h.bytesPerImage !== IMAGE_VALUES || h.size !== IMAGE_SIZE) return null;
  return h;
}

/** Whether the header's data file exists with the right size. */
function dataFileOk(dir: string, h: CacheHeader): boolean {
  try {
    return statSync(join(dir, h.dataFile)).size === h.count * IMAGE_VALUES;
  } catch {
    return false;
  }
}

interface ProgressState {
  key: string;
  chunkSize: number;
  count: number;
  done: number[];
  skipped: SkippedImage[];
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.round(s);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function makeReporter(opts: PrepareOptions, label: string): { update: (p: ProgressInfo) => void; end: (p: ProgressInfo) => void } {
  const p = opts.progress ?? 'auto';
  if (typeof p === 'function') return { update: p, end: p };
  const stream = opts.progressStream ?? process.stderr;
  const mode = p === 'auto' ? (stream.isTTY ? 'bar' : 'lines') : p;
  if (mode === 'none') return { update: () => {}, end: () => {} };
  let last = 0;
  const text = (i: ProgressInfo): string => {
    const eta = i.imagesPerSecond > 0 ? (i.total - i.done) / i.imagesPerSecond : Infinity;
    const skip = i.skipped ? `, ${i.skipped} skipped` : '';
    return `${i.done}/${i.total} ${(100 * i.done / Math.max(1, i.total)).toFixed(1)}% ${i.imagesPerSecond.toFixed(0)} img/s, ETA ${fmtTime(eta)}${skip}`;
  };
  if (mode === 'bar') {
    return {
      update: (i) => {
        const now = Date.now();
        if (now - last < 100) return;
        last = now;
        const width = 30;
        const fill = Math.round((width * i.done) / Math.max(1, i.total));
        stream.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text(i)}\x1b[K`);
      },
      end: (i) => stream.write(`\r${label} done: ${i.done} images in ${fmtTime(i.seconds)} (${i.imagesPerSecond.toFixed(0)} img/s${i.skipped ? `, ${i.skipped} skipped` : ''})\x1b[K\n`),
    };
  }
  return {
    update: (i) => {
      const now = Date.now();
      if (now - last < 10_000) return;
      last = now;
      stream.write(`${label}: ${text(i)}\n`);
    },
    end: (i) => stream.write(`${label}: done, ${i.done} images in ${fmtTime(i.seconds)} (${i.imagesPerSecond.toFixed(0)} img/s${i.skipped ? `, ${i.skipped} skipped` : ''})\n`),
  };
}

/**
 * Prepares (or finds) the packed cache for the images under `root`: CelebA in its official
 * layout, or any folder of PNG/JPEG images. Corrupt or unreadable images are skipped and
 * listed in the result and the header, never fatal.
 */
export async function prepareData(root: string, opts: PrepareOptions = {}): Promise<PrepareResult> {
  return prepareListing(listSource(root, opts.kind ?? 'auto'), opts);
}

export async function prepareListing(listing: SourceListing, opts: PrepareOptions = {}): Promise<PrepareResult> {
  const t0 = performance.now();
  const pre = resolvePreprocess(opts.preprocess);
  const paths = cachePaths(listing, pre, opts);
  const count = listing.entries.length;
  if (!opts.force) {
    const h = readCacheHeader(paths.header, paths.key);
    if (h && h.count === count && dataFileOk(paths.dir, h)) {
      const seconds = (performance.now() - t0) / 1000;
      return { dataPath: paths.data, headerPath: paths.header, header: h, cacheHit: true, resumed: 0, decoded: 0, skipped: h.skipped, missing: h.missing, seconds, imagesPerSecond: 0, listing };
    }
  }
  const chunkSize = Math.max(1, Math.floor(opts.chunkSize ?? 128));
  const cache = new PartialCache(paths, listing, chunkSize, opts.force ? null : readProgress(paths, chunkSize, count));
  try {
    const reporter = makeReporter(opts, `prepare ${basename(listing.root) || listing.root} (${pre.mode}/${pre.filter})`);
    const tDecode = performance.now();
    const info = (): ProgressInfo => {
      const seconds = (performance.now() - tDecode) / 1000;
      return { done: cache.resumed + cache.decoded, total: count, skipped: cache.skipped.length, seconds, imagesPerSecond: seconds > 0 ? cache.decoded / seconds : 0 };
    };
    let workers: number;
    try {
      workers = await decodeChunks(listing, pre, opts, cache, () => reporter.update(info()));
    } finally {
      cache.saveProgress();
    }
    if (opts.signal?.aborted) {
      throw Object.assign(new Error(`prepare interrupted after ${cache.resumed + cache.decoded} of ${count} images; run it again to resume`), { name: 'AbortError' });
    }
    cache.complete();
    const decodeSeconds = (performance.now() - tDecode) / 1000;
    const imagesPerSecond = decodeSeconds > 0 ? cache.decoded / decodeSeconds : 0;
    const header = cacheHeader(listing, pre, paths, cache.skipped, { seconds: decodeSeconds, imagesPerSecond, workers });
    writeJsonAtomic(paths.header, header);
    rmSync(paths.progress, { force: true });
    removeStaleCaches(paths.dir, `${listing.kind}-${pre.mode}-${pre.filter}-`, paths.key, header.source.root);
    reporter.end(info());
    const seconds = (performance.now() - t0) / 1000;
    return { dataPath: paths.data, headerPath: paths.header, header, cacheHit: false, resumed: cache.resumed, decoded: cache.decoded, skipped: cache.skipped, missing: listing.missing, seconds, imagesPerSecond, listing };
  } finally {
    cache.close();
  }
}

/** The cache's files for a listing and preprocessing (see the top of this file). */
interface CachePaths {
  dir: string;
  key: string;
  data: string;
  header: string;
  partial: string;
  progress: string;
}

function cachePaths(listing: SourceListing, pre: Preprocess, opts: PrepareOptions): CachePaths {
  const key = cacheKey(listing, pre);
  const dir = opts.cacheDir ? resolve(opts.cacheDir) : defaultCacheDir(listing.root);
  mkdirSync(dir, { recursive: true });
  const name = `${listing.kind}-${pre.mode}-${pre.filter}-${key}`;
  const data = join(dir, `${name}.u8`);
  return { dir, key, data, header: join(dir, `${name}.json`), partial: `${data}.partial`, progress: join(dir, `${name}.progress.json`) };
}

/** The progress of an interrupted prepare of the same key and chunking, if its partial file is intact. */
function readProgress(paths: CachePaths, chunkSize: number, count: number): ProgressState | null {
  if (!existsSync(paths.partial) || !existsSync(paths.progress)) return null;
  try {
    const s = JSON.parse(readFileSync(paths.progress, 'utf8')) as ProgressState;
    const ok = s.key === paths.key && s.chunkSize === chunkSize && s.count === count && statSync(paths.partial).size === count * IMAGE_VALUES;
    return ok ? s : null;
  } catch {
    return null;
  }
}

/** The partial data file being written: which chunks are done, and the images skipped so far. */
class PartialCache {
  readonly done: Uint8Array;
  skipped: SkippedImage[] = [];
  /** Images finished by an earlier, interrupted run. */
  resumed = 0;
  /** Images decoded by this run. */
  decoded = 0;
  private fd: number | null;
  private lastSave = Date.now();

  constructor(private readonly paths: CachePaths, private readonly listing: SourceListing, readonly chunkSize: number, state: ProgressState | null) {
    const count = listing.entries.length;
    this.done = new Uint8Array(Math.ceil(count / chunkSize));
    this.fd = openSync(paths.partial, state ? 'r+' : 'w+');
    if (!state) {
      ftruncateSync(this.fd, count * IMAGE_VALUES);
      return;
    }
    for (const c of state.done) {
      if (c >= 0 && c < this.done.length && !this.done[c]) {
        this.done[c] = 1;
        this.resumed += Math.min(chunkSize, count - c * chunkSize);
      }
    }
    this.skipped = state.skipped.filter((s) => this.done[Math.floor(s.index / chunkSize)]);
  }

  /** Chunks still to decode. */
  pending(): number[] {
    return [...this.done.keys()].filter((c) => !this.done[c]);
  }

  /** The source files of chunk `c`. */
  chunkFiles(c: number): string[] {
    const { entries, root } = this.listing;
    return entries.slice(c * this.chunkSize, Math.min(entries.length, (c + 1) * this.chunkSize)).map((e) => join(root, e.rel));
  }

  /** Writes chunk `c`'s decoded images and records its failures; saves progress every 5 s. */
  accept(c: number, data: Uint8Array, errors: { k: number; error: string }[]): void {
    const start = c * this.chunkSize;
    let off = 0;
    while (off < data.length) off += writeSync(this.fd!, data, off, data.length - off, start * IMAGE_VALUES + off);
    for (const e of errors) this.skipped.push({ index: start + e.k, file: this.listing.entries[start + e.k].rel, error: e.error });
    this.done[c] = 1;
    this.decoded += data.length / IMAGE_VALUES;
    if (Date.now() - this.lastSave > 5000) {
      this.saveProgress();
      this.lastSave = Date.now();
    }
  }

  /** Flushes the data and records the finished chunks, so an interrupted run resumes there. */
  saveProgress(): void {
    fdatasyncSync(this.fd!);
    const { key } = this.paths;
    const s: ProgressState = { key, chunkSize: this.chunkSize, count: this.listing.entries.length, done: [...this.done.keys()].filter((c) => this.done[c]), skipped: this.skipped };
    writeJsonAtomic(this.paths.progress, s);
  }

  /** Flushes, closes and renames the partial file to the data file (the header comes after). */
  complete(): void {
    fdatasyncSync(this.fd!);
    this.close();
    renameSync(this.paths.partial, this.paths.data);
    this.skipped.sort((a, b) => a.index - b.index);
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}

/** Decodes the pending chunks in worker threads (or here when none are available); returns the worker count. */
async function decodeChunks(listing: SourceListing, pre: Preprocess, opts: PrepareOptions, cache: PartialCache, onChunk: () => void): Promise<number> {
  const pending = cache.pending();
  const accept = (c: number, data: Uint8Array, errors: { k: number; error: string }[]): void => {
    cache.accept(c, data, errors);
    onChunk();
  };
  let nWorkers = Math.min(opts.workers ?? availableParallelism(), pending.length);
  if (nWorkers > 0 && !workersAvailable()) nWorkers = 0;
  if (nWorkers > 0) {
    await runWorkers(nWorkers, pending, (c) => ({ type: 'prepare', id: c, files: cache.chunkFiles(c), preprocess: pre }), accept, opts.signal);
    return nWorkers;
  }
  for (const c of pending) {
    if (opts.signal?.aborted) break;
    const { data, errors } = prepareFiles(cache.chunkFiles(c), pre);
    accept(c, data, errors);
    await new Promise((r) => setImmediate(r)); // let signals and timers through
  }
  return 0;
}

/** The header that marks a cache complete. */
function cacheHeader(listing: SourceListing, pre: Preprocess, paths: CachePaths, skipped: SkippedImage[], stats: CacheHeader['stats']): CacheHeader {
  const skippedSet = new Set(skipped.map((s) => s.index));
  const splits = listing.entries.map((e, i) => (skippedSet.has(i) ? 'x' : e.split < 0 ? '-' : String(e.split))).join('');
  return {
    format: CACHE_FORMAT,
    version: CACHE_VERSION,
    key: paths.key,
    created: new Date().toISOString(),
    source: { kind: listing.kind, root: resolve(listing.root), partitionFile: listing.partitionFile, fingerprint: listing.fingerprint, notes: listing.notes },
    preprocess: pre,
    size: IMAGE_SIZE,
    layout: 'NCHW uint8',
    bytesPerImage: IMAGE_VALUES,
    count: listing.entries.length,
    dataFile: basename(paths.data),
    files: listing.entries.map((e) => e.rel),
    splits,
    skipped,
    missing: listing.missing,
    stats,
  };
}

/**
 * Deletes complete caches in `dir` that an earlier version of the same source left behind
 * (same kind and preprocessing, same root, another key): they can never be hits again.
 */
function removeStaleCaches(dir: string, prefix: string, key: string, root: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const f of names) {
    if (!f.startsWith(prefix) || !f.endsWith('.json') || f.endsWith('.progress.json') || f.includes(key)) continue;
    const h = readCacheHeader(join(dir, f));
    if (!h || h.source.root !== root) continue;
    rmSync(join(dir, h.dataFile), { force: true });
    rmSync(join(dir, f), { force: true });
  }
}

/** Hands work units to `n` data workers as they become free; resolves when all are done (or aborted). */
export async function runWorkers(
  n: number,
  chunks: number[],
  request: (c: number) => WorkerRequest,
  accept: (c: number, data: Uint8Array, errors: { k: number; error: string }[]) => void,
  signal?: AbortSignal,
): Promise<void> {
  const workers: Worker[] = [];
  let next = 0;
  try {
    await new Promise<void>((resolveAll, rejectAll) => {
      let active = 0;
      let failed = false;
      const feed = (w: Worker): void => {
        if (failed) return;
        if (next < chunks.length && !signal?.aborted) {
          active++;
          w.postMessage(request(chunks[next++]));
        } else if (active === 0) {
          resolveAll();
        }
      };
      for (let i = 0; i < n; i++) {
        const w = startDataWorker();
        workers.push(w);
        w.on('message', (m: WorkerReply) => {
          active--;
          if (m.type === 'prepared' || m.type === 'rendered') {
            try {
              if (m.type === 'prepared') accept(m.id, m.data, m.errors);
              else accept(m.id, new Uint8Array(0), []);
            } catch (e) {
              failed = true;
              rejectAll(e);
              return;
            }
          } else if (m.type === 'error') {
            failed = true;
            rejectAll(new Error(`data worker failed: ${m.error}`));
            return;
          }
          feed(w);
        });
        w.on('error', (e) => {
          failed = true;
          rejectAll(e);
        });
        w.on('exit', (code) => {
          if (!failed && code !== 0) {
            failed = true;
            rejectAll(new Error(`data worker exited with code ${code}`));
          }
        });
        feed(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => terminateWorker(w)));
  }
}

/**
 * Reads a prepared cache's images into shared memory (so loader workers can read them).
 * Returns the header and the NCHW uint8 images.
 */
export function readCacheData(headerPath: string): { header: CacheHeader; images: Uint8Array } {
  const header = readCacheHeader(headerPath);
  if (!header) throw new Error(`${headerPath}: not a valid ${CACHE_FORMAT} header`);
  const dataPath = join(resolve(headerPath, '..'), header.dataFile);
  const bytes = header.count * IMAGE_VALUES;
  const images = new Uint8Array(new SharedArrayBuffer(Math.max(1, bytes)), 0, bytes);
  const fd = openSync(dataPath, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size !== bytes) throw new Error(`${dataPath}: ${size} bytes, header says ${header.count} images (${bytes} bytes)`);
    let off = 0;
    while (off < bytes) {
      const n = readSync(fd, images, off, Math.min(bytes - off, 1 << 30), off);
      if (n <= 0) throw new Error(`${dataPath}: unexpected end of file at byte ${off}`);
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return { header, images };
}
