// Image sources on disk: CelebA in its official layout, or any folder of PNG/JPEG images.
// A listing names every image (relative path, size, mtime, split) and fingerprints them, so
// a prepared cache can tell whether its source changed.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

export type SourceKind = 'celeba' | 'folder';

/** Split codes: 0 train, 1 valid, 2 test, -1 none (the loader assigns a seeded split). */
export type SplitCode = 0 | 1 | 2 | -1;
export const SPLIT_NAMES = ['train', 'valid', 'test'] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];

export interface SourceEntry {
  /** Path relative to the source root, with '/' separators. */
  rel: string;
  size: number;
  mtimeMs: number;
  split: SplitCode;
}

export interface SourceListing {
  kind: SourceKind;
  root: string;
  /** CelebA: the folder holding the JPEGs; folder sources: the root. */
  imageDir: string;
  /** CelebA: the partition file used (null when the standard index ranges were assumed). */
  partitionFile: string | null;
  entries: SourceEntry[];
  /** Images the partition file lists that are not on disk. */
  missing: string[];
  /** Images on disk that the partition file does not list (not used). */
  unlisted: number;
  notes: string[];
  /** sha256 over kind, names, sizes, mtimes and splits. */
  fingerprint: string;
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;

/** The standard CelebA split by image number (what list_eval_partition.txt says). */
export function standardCelebASplit(name: string): SplitCode | null {
  const m = /^(\d{6})\.jpg$/i.exec(name);
  if (!m) return null;
  const n = Number(m[1]);
  if (n < 1 || n > 202599) return null;
  return n <= 162770 ? 0 : n <= 182637 ? 1 : 2;
}

/**
 * Parses list_eval_partition.txt (`000001.jpg 0` per line) or the CSV variant
 * (`image_id,partition` header, `000001.jpg,0`). Returns file name -> split, in file order.
 * Throws on a line it cannot read, naming the line.
 */
export function parsePartition(text: string, fileName = 'list_eval_partition.txt'): Map<string, SplitCode> {
  const out = new Map<string, SplitCode>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/[\s,]+/);
    if (i === 0 && parts.length === 2 && !/^[0-2]$/.test(parts[1])) continue; // CSV header
    if (parts.length !== 2 || !/^[0-2]$/.test(parts[1])) {
      throw new Error(`${fileName}:${i + 1}: expected "<image> <0|1|2>", got ${JSON.stringify(line.slice(0, 80))}`);
    }
    out.set(parts[0], Number(parts[1]) as SplitCode);
  }
  return out;
}

export interface CelebALayout {
  imageDir: string;
  partitionFile: string | null;
}

/** Finds the CelebA image folder and partition file under root, or null if root isn't CelebA. */
export function findCelebA(root: string): CelebALayout | null {
  const candidates = [join(root, 'img_align_celeba', 'img_align_celeba'), join(root, 'img_align_celeba')];
  if (root.replace(/[\\/]+$/, '').endsWith('img_align_celeba')) candidates.push(root);
  let imageDir: string | null = null;
  for (const c of candidates) {
    if (isDir(c) && readdirSync(c).some((f) => /\.jpe?g$/i.test(f))) {
      imageDir = c;
      break;
    }
  }
  if (!imageDir) return null;
  const partitionCandidates = [
    join(root, 'list_eval_partition.txt'),
    join(root, 'Eval', 'list_eval_partition.txt'),
    join(root, 'list_eval_partition.csv'),
    join(root, 'Eval', 'list_eval_partition.csv'),
  ];
  const partitionFile = partitionCandidates.find((p) => existsSync(p)) ?? null;
  return { imageDir, partitionFile };
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Lists CelebA under root. Images come in partition-file order with the file's splits; without
 * a partition file, every NNNNNN.jpg gets the standard split by number (noted in `notes`).
 */
export function listCelebA(root: string): SourceListing {
  const layout = findCelebA(root);
  if (!layout) throw new Error(`${root}: no img_align_celeba/ folder of JPEGs (not a CelebA layout)`);
  const onDisk = new Set(readdirSync(layout.imageDir).filter((f) => /\.jpe?g$/i.test(f)));
  const notes: string[] = [];
  let order: [string, SplitCode][];
  if (layout.partitionFile) {
    order = [...parsePartition(readFileSync(layout.partitionFile, 'utf8'), layout.partitionFile)];
  } else {
    notes.push('no list_eval_partition.txt: using the standard CelebA split by image number');
    order = [];
    for (const f of [...onDisk].sort()) {
      const s = standardCelebASplit(f);
      if (s !== null) order.push([f, s]);
    }
    if (order.length < onDisk.size) notes.push(`${onDisk.size - order.length} images with non-standard names ignored`);
  }
  const entries: SourceEntry[] = [];
  const missing: string[] = [];
  let listed = 0;
  const relDir = relative(root, layout.imageDir).split(sep).join('/');
  for (const [name, split] of order) {
    if (!onDisk.has(name)) {
      missing.push(name);
      continue;
    }
    listed++;
    const st = statSync(join(layout.imageDir, name));
    entries.push({ rel: relDir ? `${relDir}/${name}` : name, size: st.size, mtimeMs: Math.trunc(st.mtimeMs), split });
  }
  const unlisted = onDisk.size - listed;
  if (missing.length) notes.push(`${missing.length} images listed in the partition file are missing`);
  if (unlisted && layout.partitionFile) notes.push(`${unlisted} images not in the partition file are ignored`);
  return finish({ kind: 'celeba', root, imageDir: layout.imageDir, partitionFile: layout.partitionFile, entries, missing, unlisted, notes });
}

/**
 * Lists every .jpg/.jpeg/.png under root, recursively, sorted by path. Folders whose names
 * start with '.' (such as the cache folder) are skipped. Splits are left to the loader.
 */
export function listImageFolder(root: string): SourceListing {
  if (!isDir(root)) throw new Error(`${root}: not a folder`);
  const entries: SourceEntry[] = [];
  const walk = (dir: string): void => {
    const items = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const it of items) {
      if (it.name.startsWith('.')) continue;
      const p = join(dir, it.name);
      let st;
      try {
        st = statSync(p); // follows symlinks
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && IMAGE_EXT.test(it.name)) {
        entries.push({ rel: relative(root, p).split(sep).join('/'), size: st.size, mtimeMs: Math.trunc(st.mtimeMs), split: -1 });
      }
    }
  };
  walk(root);
  if (entries.length === 0) throw new Error(`${root}: no .jpg/.jpeg/.png images found`);
  return finish({ kind: 'folder', root, imageDir: root, partitionFile: null, entries, missing: [], unlisted: 0, notes: [] });
}

/** CelebA if root has the CelebA layout, otherwise a plain image folder. */
export function listSource(root: string, kind: SourceKind | 'auto' = 'auto'): SourceListing {
  if (kind === 'celeba') return listCelebA(root);
  if (kind === 'folder') return listImageFolder(root);
  return findCelebA(root) ? listCelebA(root) : listImageFolder(root);
}

function finish(l: Omit<SourceListing, 'fingerprint'>): SourceListing {
  const h = createHash('sha256');
  h.update(`${l.kind}\n`);
  for (const e of l.entries) h.update(`${e.rel}\t${e.size}\t${e.mtimeMs}\t${e.split}\n`);
  return { ...l, fingerprint: h.digest('hex') };
}
