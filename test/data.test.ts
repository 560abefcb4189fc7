// The data pipeline: decoding, crops and resizing against a float64 reference, synthetic
// faces, CelebA and image-folder prepare (splits, skipped files, cache hits, resume), the
// batch loader (determinism, resume, evaluation passes) and PNG grids. CPU only.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import {
  IMAGE_SIZE,
  IMAGE_VALUES,
  cropBox,
  decodeImage,
  floatToU8,
  preprocessImage,
  resizeToPlanar,
  u8ToFloat,
  type PreprocessMode,
  type ResizeFilter,
} from '../train/data/images.js';
import { syntheticFaces, syntheticFacesU8 } from '../train/data/synthetic.js';
import { prepareData, readCacheData } from '../train/data/prepare.js';
import { listImageFolder, parsePartition, standardCelebASplit } from '../train/data/sources.js';
import { getImages, openDataset, seededSubset, syntheticDataset } from '../train/data/dataset.js';
import { DataLoader } from '../train/data/loader.js';
import { imageGrid, writeImageGrid } from '../train/data/png.js';
import {
  CELEBA_H,
  CELEBA_W,
  celebaName,
  encodeJpeg,
  encodePngFile,
  gradientImage,
  makeCelebAFixture,
  makeImageFolder,
  tempDir,
} from './fixtures.js';

const S = IMAGE_SIZE;

// ---------------------------------------------------------------------------------------------
// Float64 reference resize, written directly in 2D (not separable, no shared code).

function refAxis(inSize: number, outSize: number, filter: ResizeFilter, o: number): Map<number, number> {
  const scale = inSize / outSize;
  const w = new Map<number, number>();
  if (filter === 'area') {
    const a = o * scale;
    const b = (o + 1) * scale;
    for (let i = 0; i < inSize; i++) {
      const overlap = Math.min(b, i + 1) - Math.max(a, i);
      if (overlap > 0) w.set(i, overlap / scale);
    }
    return w;
  }
  // PIL's antialiased bilinear: a triangle of half-width max(scale, 1) around the centre.
  const fs = Math.max(scale, 1);
  const centre = (o + 0.5) * scale;
  const lo = Math.max(Math.trunc(centre - fs + 0.5), 0);
  const hi = Math.min(Math.trunc(centre + fs + 0.5), inSize);
  let sum = 0;
  for (let i = lo; i < hi; i++) {
    const v = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / fs));
    w.set(i, v);
    sum += v;
  }
  for (const [i, v] of w) w.set(i, v / sum);
  return w;
}

function refResize(rgba: Uint8Array, width: number, mode: PreprocessMode, height: number, filter: ResizeFilter): Float64Array {
  const box = cropBox(width, height, mode);
  const out = new Float64Array(3 * S * S);
  for (let oy = 0; oy < S; oy++) {
    const wy = refAxis(box.height, S, filter, oy);
    for (let ox = 0; ox < S; ox++) {
      const wx = refAxis(box.width, S, filter, ox);
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (const [iy, vy] of wy) for (const [ix, vx] of wx) acc += vy * vx * rgba[((box.y + iy) * width + box.x + ix) * 4 + c];
        out[c * S * S + oy * S + ox] = acc;
      }
    }
  }
  return out;
}

/** Element-wise equality of big arrays (tap's t.same is far too slow for these). */
function equal(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

// ---------------------------------------------------------------------------------------------

t.test('centre crops are placed like torchvision CenterCrop', async (t) => {
  t.same(cropBox(178, 218, 'squash'), { x: 0, y: 0, width: 178, height: 218 });
  t.same(cropBox(178, 218, 'crop148'), { x: 15, y: 35, width: 148, height: 148 });
  t.same(cropBox(178, 218, 'crop178'), { x: 0, y: 20, width: 178, height: 178 });
  t.same(cropBox(178, 218, 'center'), { x: 0, y: 20, width: 178, height: 178 });
  t.same(cropBox(100, 80, 'crop148'), { x: 0, y: 0, width: 100, height: 80 }, 'clamped to small images');
});

t.test('resize matches a float64 reference on a gradient and on noise, every mode and filter', async (t) => {
  const { rgba, value } = gradientImage(CELEBA_W, CELEBA_H);
  const noise = new Uint8Array(CELEBA_W * CELEBA_H * 4);
  let seed = 12345;
  for (let i = 0; i < noise.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    noise[i] = seed >>> 24;
  }
  for (const mode of ['squash', 'crop148', 'crop178'] as const) {
    for (const filter of ['bilinear', 'area'] as const) {
      for (const [name, img] of [
        ['gradient', rgba],
        ['noise', noise],
      ] as const) {
        const out = preprocessImage({ width: CELEBA_W, height: CELEBA_H, data: img }, { mode, filter });
        t.equal(out.length, 3 * S * S, `${mode}/${filter}: 3x64x64`);
        const ref = refResize(img, CELEBA_W, mode, CELEBA_H, filter);
        // Ours rounds once at the end; float32 accumulation may move a value across .5.
        t.ok(maxAbsDiff(out, ref) <= 0.5 + 1e-3, `${mode}/${filter}/${name}: within rounding of the float64 reference (max ${maxAbsDiff(out, ref).toFixed(4)})`);
      }
      // Gradient: area averaging of a linear ramp is the ramp at the footprint's centre.
      const out = preprocessImage({ width: CELEBA_W, height: CELEBA_H, data: rgba }, { mode, filter });
      const box = cropBox(CELEBA_W, CELEBA_H, mode);
      let worst = 0;
      for (let c = 0; c < 3; c++) {
        for (let oy = 0; oy < S; oy++) {
          for (let ox = 0; ox < S; ox++) {
            const interior = ox >= 2 && ox < S - 2 && oy >= 2 && oy < S - 2;
            if (filter === 'bilinear' && !interior) continue; // truncated triangle at the border
            const x = box.x + ((ox + 0.5) * box.width) / S;
            const y = box.y + ((oy + 0.5) * box.height) / S;
            worst = Math.max(worst, Math.abs(out[c * S * S + oy * S + ox] - value(c, x, y)));
          }
        }
      }
      t.ok(worst <= 1.01, `${mode}/${filter}: gradient sampled at footprint centres (worst ${worst.toFixed(3)})`);
    }
  }
  // Upscaling and identity work too.
  const small = gradientImage(40, 30);
  const up = new Uint8Array(3 * S * S);
  resizeToPlanar(small.rgba, 40, 30, 4, { x: 0, y: 0, width: 40, height: 30 }, S, 'area', up);
  t.ok(maxAbsDiff(up, refResize(small.rgba, 40, 'squash', 30, 'bilinear')) <= 0.5 + 1e-3, 'upscaling falls back to plain bilinear');
  const same = gradientImage(S, S);
  const id = preprocessImage({ width: S, height: S, data: same.rgba }, { mode: 'squash', filter: 'area' });
  const planar = new Uint8Array(3 * S * S);
  for (let i = 0; i < S * S; i++) for (let c = 0; c < 3; c++) planar[c * S * S + i] = same.rgba[i * 4 + c];
  t.ok(equal(id, planar), '64x64 -> 64x64 is the identity (and CHW)');
});

t.test('decoding PNG and JPEG; corrupt files give errors that say what is wrong', async (t) => {
  const { rgba } = gradientImage(50, 40);
  const png = decodeImage(encodePngFile(rgba, 50, 40));
  t.same([png.width, png.height], [50, 40]);
  t.equal(maxAbsDiff(png.data, rgba), 0, 'PNG is lossless');
  const jpg = decodeImage(encodeJpeg(rgba, 50, 40, 95));
  t.same([jpg.width, jpg.height], [50, 40]);
  t.ok(meanAbsDiff(jpg.data, rgba) < 2, `JPEG close (mean abs ${meanAbsDiff(jpg.data, rgba).toFixed(2)})`);
  const full = encodeJpeg(rgba, 50, 40);
  t.throws(() => decodeImage(full.subarray(0, full.length >> 1)), /corrupt JPEG/, 'truncated JPEG');
  t.throws(() => decodeImage(Buffer.from('hello world')), /not a JPEG or PNG/, 'garbage');
  t.throws(() => decodeImage(new Uint8Array(0)), /empty file/);
  const pngBytes = encodePngFile(rgba, 50, 40);
  t.throws(() => decodeImage(pngBytes.subarray(0, 60)), /corrupt PNG/, 'truncated PNG');
  // Transparent pixels are composited over black.
  const a = new Uint8Array([200, 100, 50, 128]);
  const d = decodeImage(encodePngFile(a, 1, 1));
  t.same(Array.from(d.data), [100, 50, 25, 255]);
  t.same(Array.from(u8ToFloat(new Uint8Array([0, 255]))), [-0.5, 0.5]);
  t.same(Array.from(floatToU8([-0.5, 0.5, -3, 3, NaN])), [0, 255, 0, 255, 0]);
});

t.test('synthetic faces: deterministic per seed, index-addressable, varied, fast', async (t) => {
  const a = syntheticFacesU8(16, 3);
  t.ok(equal(syntheticFacesU8(16, 3), a), 'same seed, same faces');
  t.notOk(equal(syntheticFacesU8(16, 4), a), 'another seed, other faces');
  t.ok(equal(syntheticFacesU8(4, 3, 10), a.subarray(10 * IMAGE_VALUES, 14 * IMAGE_VALUES)), 'face i is the same however it is asked for');
  const f = syntheticFaces(2, 3);
  t.equal(f.length, 2 * IMAGE_VALUES);
  t.ok(f.every((v) => v >= -0.5 && v <= 0.5), 'floats in [-0.5, 0.5]');
  // Varied: every pair differs a lot, and the per-pixel spread over faces is large.
  let minPair = Infinity;
  for (let i = 0; i < 16; i++) {
    for (let j = i + 1; j < 16; j++) {
      minPair = Math.min(minPair, meanAbsDiff(a.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES), a.subarray(j * IMAGE_VALUES, (j + 1) * IMAGE_VALUES)));
    }
  }
  t.ok(minPair > 10, `no two faces alike (smallest mean difference ${minPair.toFixed(1)})`);
  // Structure: the face region (centre) differs from the background (corners), and eyes are
  // darker than the skin between them in most faces.
  let darkerEyes = 0;
  for (let i = 0; i < 16; i++) {
    const img = a.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
    const lum = (x: number, y: number) => img[y * S + x] + img[S * S + y * S + x] + img[2 * S * S + y * S + x];
    let minEyeRow = Infinity;
    for (let y = 18; y < 36; y++) for (let x = 14; x < 50; x++) minEyeRow = Math.min(minEyeRow, lum(x, y));
    if (minEyeRow < lum(32, 38) - 60) darkerEyes++;
  }
  t.ok(darkerEyes >= 14, `dark features inside the face (${darkerEyes}/16)`);
  syntheticFacesU8(200, 8); // warm up the JIT
  const n = 300;
  const t0 = performance.now();
  syntheticFacesU8(n, 9);
  const rate = n / ((performance.now() - t0) / 1000);
  t.comment(`synthetic faces: ${rate.toFixed(0)} images/s on one thread`);
  t.ok(rate > 100, 'renders at least hundreds per second even on a loaded machine');
});

t.test('openDataset defaults to synthetic faces; prerendering fills the shared memory', async (t) => {
  const ds = await openDataset({ synthetic: { seed: 2, train: 30, valid: 4, test: 4, prerender: true }, workers: 2 });
  t.equal(ds.kind, 'synthetic');
  t.same([ds.splits.train.length, ds.splits.valid.length, ds.splits.test.length], [30, 4, 4]);
  t.equal(ds.splits.valid[0], 30, 'splits are disjoint index ranges');
  if (ds.store.kind !== 'synthetic' || !ds.store.rendered) throw new Error('expected a memoised synthetic store');
  t.ok(new Uint8Array(ds.store.rendered).every((f) => f === 1), 'every face rendered');
  t.ok(equal(getImages(ds, 'train', 30), syntheticFaces(30, 2)), 'rendered by the workers = rendered here');
  t.ok(equal(getImages(ds, 'test', [3]), syntheticFaces(1, 2, 37)));
});

t.test('partition files and the standard split', async (t) => {
  const m = parsePartition('000001.jpg 0\n000002.jpg 1\r\n\n000003.jpg 2\n');
  t.same([...m], [
    ['000001.jpg', 0],
    ['000002.jpg', 1],
    ['000003.jpg', 2],
  ]);
  t.same([...parsePartition('image_id,partition\n000001.jpg,0\n000005.jpg,2\n')], [
    ['000001.jpg', 0],
    ['000005.jpg', 2],
  ], 'the CSV variant');
  t.throws(() => parsePartition('000001.jpg 0\n000002.jpg seven\n'), /:2: expected/);
  t.same(['000001.jpg', '162770.jpg', '162771.jpg', '182637.jpg', '182638.jpg', '202599.jpg', 'x.jpg'].map(standardCelebASplit), [0, 0, 1, 1, 2, 2, null]);
});

// CelebA fixtures share their JPEG encodes (jpeg-js encoding is the slow part).
const jpegCache = new Map<number, Buffer>();

t.test('CelebA layout: prepare, splits, skipped report, cache hit, preprocessing change', async (t) => {
  const root = tempDir(t);
  const fx = makeCelebAFixture(root, { jpegCache });
  const lines: string[] = [];
  const r1 = await prepareData(root, { workers: 2, chunkSize: 8, progress: 'lines', progressStream: { write: (s: string) => lines.push(s), isTTY: false } as unknown as NodeJS.WriteStream });
  t.equal(r1.cacheHit, false);
  t.equal(r1.listing.kind, 'celeba');
  t.equal(r1.header.count, fx.count, 'every image on disk that the partition lists has a slot');
  t.equal(r1.decoded, fx.count);
  t.same(r1.skipped.map((s) => s.file), [fx.corrupt], 'the corrupt image is skipped and named');
  t.match(r1.skipped[0].error, /corrupt JPEG/);
  t.same(r1.missing, [fx.missing], 'the listed-but-absent image is reported');
  t.ok(r1.dataPath.startsWith(join(root, '.vqvae-cache')), 'cache beside the data by default');
  t.equal(statSync(r1.dataPath).size, fx.count * IMAGE_VALUES);
  t.match(lines.join(''), /done, 32 images/, 'a final progress line');
  t.comment(`prepare: ${r1.imagesPerSecond.toFixed(0)} images/s (178x218 JPEG, 2 workers, tiny run incl. worker start-up)`);

  const ds = await openDataset({ path: root, progress: 'none' });
  const name = (i: number) => Number(ds.files![i].slice(-10, -4));
  t.same(Array.from(ds.splits.train, name), fx.expected.train, 'train = partition 0 minus the corrupt one');
  t.same(Array.from(ds.splits.valid, name), fx.expected.valid);
  t.same(Array.from(ds.splits.test, name), fx.expected.test);
  t.equal(ds.prepared?.cacheHit, true, 'opening again is a cache hit');

  // Content: each prepared image is the squash resize of its source (up to JPEG loss).
  const { images } = readCacheData(r1.headerPath);
  let worst = 0;
  for (let i = 0; i < fx.count; i++) {
    const n = i + 1;
    const slot = images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
    if (`img_align_celeba/${celebaName(n)}` === fx.corrupt) {
      t.ok(slot.every((v) => v === 0), 'the skipped slot is zeros');
      continue;
    }
    const ref = preprocessImage({ width: CELEBA_W, height: CELEBA_H, data: fx.rgba.get(n)! });
    worst = Math.max(worst, meanAbsDiff(slot, ref));
  }
  t.ok(worst < 3, `prepared images match their sources in order (worst mean abs diff ${worst.toFixed(2)})`);

  // Second prepare: a hit, fast.
  const t0 = performance.now();
  const r2 = await prepareData(root, { workers: 2, progress: 'none' });
  const ms = performance.now() - t0;
  t.equal(r2.cacheHit, true, 'second prepare is a cache hit');
  t.equal(r2.dataPath, r1.dataPath);
  t.ok(ms < 1000, `cache hit in ${ms.toFixed(0)} ms`);

  // Another preprocessing: a new cache, the old one kept.
  const r3 = await prepareData(root, { workers: 0, preprocess: { mode: 'crop148' }, progress: 'none' });
  t.equal(r3.cacheHit, false, 'changing preprocessing re-prepares');
  t.not(r3.dataPath, r1.dataPath);
  t.ok(existsSync(r1.dataPath), 'the squash cache stays');
  const c148 = readCacheData(r3.headerPath).images.subarray(0, IMAGE_VALUES);
  const ref148 = preprocessImage({ width: CELEBA_W, height: CELEBA_H, data: fx.rgba.get(1)! }, { mode: 'crop148', filter: 'bilinear' });
  t.ok(meanAbsDiff(c148, ref148) < 3, 'crop148 cache holds crop148 images');
  t.equal((await prepareData(root, { workers: 0, preprocess: { mode: 'crop148' }, progress: 'none' })).cacheHit, true);

  // Touching a source file invalidates the cache.
  const f = join(root, 'img_align_celeba', celebaName(2));
  utimesSync(f, new Date(), new Date(Date.now() + 5000));
  const r4 = await prepareData(root, { workers: 0, progress: 'none' });
  t.equal(r4.cacheHit, false, 'a changed source re-prepares');
  t.notOk(existsSync(r1.dataPath), 'the stale squash cache of the old source is removed');
  t.ok(existsSync(r3.dataPath), 'caches of other preprocessing stay');

  // A seeded subset is reproducible and a subset of the split.
  const sub1 = await openDataset({ path: root, progress: 'none', subset: { train: 5, valid: 2 }, subsetSeed: 4 });
  const sub2 = await openDataset({ path: root, progress: 'none', subset: { train: 5, valid: 2 }, subsetSeed: 4 });
  t.same(Array.from(sub1.splits.train), Array.from(sub2.splits.train));
  t.equal(sub1.splits.train.length, 5);
  t.equal(sub1.splits.valid.length, 2);
  t.equal(sub1.splits.test.length, fx.expected.test.length, 'unlisted splits unchanged');
  t.ok(Array.from(sub1.splits.train).every((i) => ds.splits.train.includes(i)));
  t.notSame(Array.from(seededSubset(ds.splits.train, 5, 5, 1)), Array.from(seededSubset(ds.splits.train, 5, 4, 1)), 'another seed, another subset');
});

t.test('CelebA layout with the partition file under Eval/ and a separate cache folder', async (t) => {
  const root = tempDir(t);
  const cacheDir = tempDir(t, 'vqvae-cache-');
  const fx = makeCelebAFixture(root, { train: 8, valid: 3, test: 3, corruptAt: 12, partitionUnderEval: true, jpegCache });
  const ds = await openDataset({ path: root, cacheDir, workers: 0, progress: 'none', preprocess: { mode: 'crop178', filter: 'area' } });
  t.equal(ds.kind, 'celeba');
  t.equal(ds.prepared?.listing.partitionFile, join(root, 'Eval', 'list_eval_partition.txt'));
  t.same([ds.splits.train.length, ds.splits.valid.length, ds.splits.test.length], [8, 3, 2]);
  t.same(ds.prepared?.skipped.map((s) => s.file), [fx.corrupt]);
  t.ok(readdirSync(cacheDir).some((f) => f.startsWith('celeba-crop178-area-') && f.endsWith('.u8')), 'cache in the configured folder');
  t.notOk(existsSync(join(root, '.vqvae-cache')), 'nothing written beside the data');
  t.match(ds.description, /1 unreadable images skipped/);
});

t.test('an interrupted prepare resumes and gives the same cache', async (t) => {
  const root = tempDir(t);
  makeCelebAFixture(root, { train: 12, valid: 2, test: 2, corruptAt: 3, jpegCache });
  const ac = new AbortController();
  let calls = 0;
  await t.rejects(
    prepareData(root, {
      workers: 0,
      chunkSize: 4,
      signal: ac.signal,
      progress: () => {
        if (++calls === 2) ac.abort();
      },
    }),
    { name: 'AbortError' },
  );
  const cacheDir = join(root, '.vqvae-cache');
  t.ok(readdirSync(cacheDir).some((f) => f.endsWith('.u8.partial')), 'partial file kept');
  t.notOk(readdirSync(cacheDir).some((f) => f.endsWith('.u8')), 'no complete cache yet');
  const resumed = await prepareData(root, { workers: 0, chunkSize: 4, progress: 'none' });
  t.equal(resumed.resumed, 8, 'two chunks taken over');
  t.equal(resumed.decoded, 8, 'only the rest decoded');
  t.same(resumed.skipped.map((s) => s.index), [2], 'the skip found before the interruption is kept');
  const fresh = await prepareData(root, { workers: 0, chunkSize: 4, progress: 'none', cacheDir: tempDir(t) });
  t.ok(Buffer.compare(readFileSync(resumed.dataPath), readFileSync(fresh.dataPath)) === 0, 'resumed cache == fresh cache');
  t.notOk(readdirSync(cacheDir).some((f) => f.includes('partial') || f.includes('progress')), 'temporary files cleaned up');
});

t.test('any folder of images, recursively, with a seeded split', async (t) => {
  const root = tempDir(t);
  const { readable, garbage } = makeImageFolder(root, 12);
  const listing = listImageFolder(root);
  t.same(listing.entries.map((e) => e.rel).sort(), [...readable, garbage].sort(), 'recursive, images only, hidden folders skipped');
  const ds = await openDataset({ path: root, workers: 0, progress: 'none', splitFractions: [0.5, 0.25, 0.25], splitSeed: 1 });
  t.equal(ds.kind, 'folder');
  t.same(ds.prepared?.skipped.map((s) => s.file), [garbage], 'the garbage file is skipped');
  const all = [...ds.splits.train, ...ds.splits.valid, ...ds.splits.test].map((i) => ds.files![i]).sort();
  t.same(all, readable, 'every readable image is in exactly one split');
  t.same([ds.splits.train.length, ds.splits.valid.length, ds.splits.test.length], [6, 3, 3]);
  const again = await openDataset({ path: root, workers: 0, progress: 'none', splitFractions: [0.5, 0.25, 0.25], splitSeed: 1 });
  t.same(Array.from(again.splits.valid), Array.from(ds.splits.valid), 'same seed, same split');
  t.equal(again.prepared?.cacheHit, true);
  const other = await openDataset({ path: root, workers: 0, progress: 'none', splitFractions: [0.5, 0.25, 0.25], splitSeed: 2 });
  t.equal(other.prepared?.cacheHit, true, 'the split seed does not invalidate the cache');
  t.notSame(Array.from(other.splits.valid), Array.from(ds.splits.valid), 'another split seed, another split');
  const x = getImages(ds, 'train', 3);
  t.equal(x.length, 3 * IMAGE_VALUES);
  // A new image invalidates the cache.
  writeFileSync(join(root, 'new.png'), encodePngFile(new Uint8Array(4 * 16).fill(200), 4, 4));
  const grown = await openDataset({ path: root, workers: 0, progress: 'none' });
  t.equal(grown.prepared?.cacheHit, false);
  t.equal(grown.files!.length, readable.length + 2);
});

t.test('loader: shapes, determinism, epochs, resume, evaluation passes', async (t) => {
  const ds = syntheticDataset({ seed: 5, train: 40, valid: 10, test: 6 });
  const take = async (l: DataLoader, n: number) => {
    const out: { data: Float32Array; indices: number[] }[] = [];
    for (let i = 0; i < n; i++) {
      const b = await l.nextBatch();
      out.push({ data: b.data, indices: Array.from(b.indices) });
    }
    return out;
  };
  const a = new DataLoader(ds, { batchSize: 12, seed: 7 });
  const b = new DataLoader(ds, { batchSize: 12, seed: 7, prefetch: 'inline' });
  const c = new DataLoader(ds, { batchSize: 12, seed: 8, prefetch: 'none' });
  t.teardown(() => Promise.all([a.close(), b.close(), c.close()]));
  t.same(a.shape, [12, 3, 64, 64]);
  const ra = await take(a, 5);
  const rb = await take(b, 5);
  t.equal(ra[0].data.length, 12 * IMAGE_VALUES, 'one Float32Array per batch');
  t.ok(ra[0].data.every((v) => v >= -0.5 && v <= 0.5));
  t.same(ra.map((r) => r.indices), rb.map((r) => r.indices), 'same seed, same order (worker and inline)');
  t.ok(ra.every((r, i) => maxAbsDiff(r.data, rb[i].data) === 0), 'same pixels from the worker and this thread');
  t.ok(equal(ra[1].data.subarray(0, IMAGE_VALUES), getImages(ds, 'train', [ra[1].indices[0]])), 'batch images are the store images');
  const rc = await take(c, 1);
  t.notSame(rc[0].indices, ra[0].indices, 'another seed, another order');
  // Shuffle: the first 40 draws (3 1/3 batches) are each train image once.
  const first40 = ra.flatMap((r) => r.indices).slice(0, 40).sort((x, y) => x - y);
  t.same(first40, Array.from({ length: 40 }, (_, i) => i), 'an epoch sees every image once');

  // Resume: a loader restored from the state after 2 batches continues with batches 3, 4, 5.
  const d = new DataLoader(ds, { batchSize: 12, seed: 7, prefetch: 'inline' });
  t.teardown(() => d.close());
  await take(d, 2);
  const state = JSON.parse(JSON.stringify(d.getState()));
  t.equal(state.batches, 2);
  const e = new DataLoader(ds, { batchSize: 12, seed: 7, prefetch: 'none' });
  e.setState(state);
  const re = await take(e, 3);
  t.same(re.map((r) => r.indices), ra.slice(2).map((r) => r.indices), 'resumed run sees the same data order');
  t.same(d.getState(), state, 'the prefetched batch is not counted in the state');
  t.throws(() => e.setState({ ...state, batchSize: 4 }), /loader state is for/);

  // Replacement sampling resumes too.
  const f = new DataLoader(ds, { batchSize: 5, seed: 1, sampling: 'replacement', prefetch: 'none' });
  await take(f, 3);
  const fs = f.getState();
  const f2 = await take(f, 2);
  const g = new DataLoader(ds, { batchSize: 5, seed: 1, sampling: 'replacement', prefetch: 'none' });
  g.setState(fs);
  t.same((await take(g, 2)).map((r) => r.indices), f2.map((r) => r.indices), 'replacement sampling resumes');

  // Evaluation: the whole split once, in order, the last batch short.
  const seen: number[] = [];
  const counts: number[] = [];
  for await (const batch of a.iterate('valid', { batchSize: 4 })) {
    seen.push(...batch.indices);
    counts.push(batch.count);
    t.equal(batch.data.length, batch.count * IMAGE_VALUES);
  }
  t.same(seen, Array.from(ds.splits.valid), 'every valid image once, in order');
  t.same(counts, [4, 4, 2]);
  // Breaking out early is fine, and training batches continue unaffected.
  for await (const batch of a.iterate('test', { batchSize: 2 })) {
    t.equal(batch.count, 2);
    break;
  }
  const after = await a.nextBatch();
  const bAfter = await b.nextBatch();
  t.same(Array.from(after.indices), Array.from(bAfter.indices), 'evaluation passes do not disturb the training order');

  // uint8 batches.
  const u = new DataLoader<Uint8Array>(ds, { batchSize: 3, format: 'uint8', prefetch: 'none' });
  const ub = await u.next();
  t.ok(ub instanceof Uint8Array && ub.length === 3 * IMAGE_VALUES, 'uint8 format');
  await a.close();
  await t.rejects(a.next(), /closed/);
});

t.test('loader over a prepared cache (worker reads shared memory)', async (t) => {
  const root = tempDir(t);
  makeImageFolder(root, 8);
  const ds = await openDataset({ path: root, workers: 0, progress: 'none', splitFractions: [1, 0, 0] });
  const l = new DataLoader(ds, { batchSize: 4, seed: 3 });
  t.teardown(() => l.close());
  const batch = await l.nextBatch();
  t.ok(equal(batch.data, getImages(ds, 'train', Array.from(batch.indices, (i) => ds.splits.train.indexOf(i)))), 'batch == the images at its indices');
});

t.test('PNG grid decodes back to the images', async (t) => {
  const dir = tempDir(t);
  const faces = syntheticFaces(6, 2);
  const path = join(dir, 'sub', 'grid.png');
  const size = writeImageGrid(path, faces, 6, 4, { scale: 2, padding: 1 });
  const png = PNG.sync.read(readFileSync(path));
  t.same([png.width, png.height], [size.width, size.height]);
  t.same([png.width, png.height], [4 * 128 + 5, 2 * 128 + 3]);
  const u8 = floatToU8(faces);
  let worst = 0;
  for (let k = 0; k < 6; k++) {
    const x0 = 1 + (k % 4) * 129;
    const y0 = 1 + Math.floor(k / 4) * 129;
    for (let y = 0; y < 128; y++) {
      for (let x = 0; x < 128; x++) {
        for (let c = 0; c < 3; c++) {
          const got = png.data[((y0 + y) * png.width + x0 + x) * 4 + c];
          const want = u8[k * IMAGE_VALUES + c * S * S + (y >> 1) * S + (x >> 1)];
          worst = Math.max(worst, Math.abs(got - want));
        }
      }
    }
  }
  t.equal(worst, 0, 'every pixel of every tile');
  t.throws(() => imageGrid(faces, 7, 4), /do not hold 7 images/);
});

t.test('the synthetic faces are the same pictures as ever (the quick start and every test train on them)', async (t) => {
  // Any change to the renderer or its order of random draws changes this hash.
  const hash = createHash('sha256').update(syntheticFacesU8(256, 0, 0)).digest('hex');
  t.equal(hash, 'ae64a8a10de242b1ca93f69a5eec1458525ff165a6c1bded4b96c05caa50990c');
});
