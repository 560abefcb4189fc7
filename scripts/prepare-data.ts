// Prepares a dataset's packed 64x64 cache once (CelebA in its official layout, or any folder
// of PNG/JPEG images) and reports what it found.
//
//   npx tsx scripts/prepare-data.ts <data-dir> [--preprocess squash|crop148|crop178|center]
//       [--filter bilinear|area] [--cache-dir DIR] [--workers N] [--kind auto|celeba|folder]
//       [--force] [--grid out.png]
//
// Ctrl-C stops between chunks; running the same command again resumes.
import { parseArgs } from 'node:util';
import { getImages, openDataset } from '../train/data/dataset.js';
import { writeImageGrid } from '../train/data/png.js';
import { prepareData } from '../train/data/prepare.js';
import type { SourceKind } from '../train/data/sources.js';
import { isPreprocessMode, isResizeFilter } from '../train/data/images.js';

const usage = `usage: prepare-data <data-dir> [--preprocess squash|crop148|crop178|center] [--filter bilinear|area]
       [--cache-dir DIR] [--workers N] [--kind auto|celeba|folder] [--force] [--grid out.png]`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      preprocess: { type: 'string', default: 'squash' },
      filter: { type: 'string', default: 'bilinear' },
      'cache-dir': { type: 'string' },
      workers: { type: 'string' },
      kind: { type: 'string', default: 'auto' },
      force: { type: 'boolean', default: false },
      grid: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.error(usage);
    return values.help ? 0 : 2;
  }
  const root = positionals[0];
  const mode = values.preprocess ?? 'squash';
  const filter = values.filter ?? 'bilinear';
  if (!isPreprocessMode(mode)) throw new Error(`--preprocess: unknown mode ${mode}\n${usage}`);
  if (!isResizeFilter(filter)) throw new Error(`--filter: unknown filter ${filter}\n${usage}`);
  const kind = values.kind as SourceKind | 'auto';
  if (!['auto', 'celeba', 'folder'].includes(kind)) throw new Error(`--kind: unknown kind ${kind}\n${usage}`);
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0)) throw new Error(`--workers: expected an integer >= 0`);

  const ac = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\ninterrupted: finishing the chunks in flight (run again to resume)\n');
    ac.abort();
  });
  const r = await prepareData(root, {
    kind,
    preprocess: { mode, filter },
    cacheDir: values['cache-dir'],
    workers,
    force: values.force,
    signal: ac.signal,
  });
  const h = r.header;
  const perSplit = [0, 0, 0, 0];
  for (let i = 0; i < h.count; i++) {
    const ch = h.splits[i];
    if (ch === '0' || ch === '1' || ch === '2') perSplit[Number(ch)]++;
    else if (ch === '-') perSplit[3]++;
  }
  console.log(`${r.cacheHit ? 'cache hit' : 'prepared'}: ${r.dataPath}`);
  console.log(`source: ${h.source.kind} ${h.source.root}${h.source.partitionFile ? ` (partition ${h.source.partitionFile})` : ''}`);
  console.log(`preprocessing: ${h.preprocess.mode}, ${h.preprocess.filter} -> ${h.size}x${h.size}`);
  console.log(`images: ${h.count} (${perSplit[0]} train, ${perSplit[1]} valid, ${perSplit[2]} test${perSplit[3] ? `, ${perSplit[3]} to split by seed` : ''}${h.skipped.length ? `, ${h.skipped.length} skipped` : ''})`);
  if (!r.cacheHit) console.log(`decoded ${r.decoded} in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(0)} images/s)${r.resumed ? `, ${r.resumed} resumed` : ''}`);
  for (const n of h.source.notes) console.log(`note: ${n}`);
  if (h.skipped.length) {
    console.log(`skipped ${h.skipped.length} unreadable images:`);
    for (const s of h.skipped.slice(0, 20)) console.log(`  ${s.file}: ${s.error}`);
    if (h.skipped.length > 20) console.log(`  ... and ${h.skipped.length - 20} more (see ${r.headerPath})`);
  }
  if (h.missing.length) console.log(`missing ${h.missing.length} listed images, e.g. ${h.missing.slice(0, 5).join(', ')}`);
  if (values.grid) {
    const ds = await openDataset({ path: root, source: kind, preprocess: { mode, filter }, cacheDir: values['cache-dir'], progress: 'none' });
    const n = Math.min(64, ds.splits.train.length);
    writeImageGrid(values.grid, getImages(ds, 'train', n), n, 8, { scale: 2 });
    console.log(`grid of ${n} train images: ${values.grid}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
