// Fixture generators for the data tests: CelebA-layout folders of 178x218 JPEGs, image
// folders, and gradient images, all written to temporary folders.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { IMAGE_SIZE } from '../train/data/images.js';
import { syntheticFacesU8 } from '../train/data/synthetic.js';

export const CELEBA_W = 178;
export const CELEBA_H = 218;

/** A fresh temporary folder, removed when the test ends. */
export function tempDir(t: { teardown: (fn: () => void) => void }, prefix = 'vqvae-data-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * An RGBA image of width x height for fixture i: synthetic face i (seed 77) stretched
 * bilinearly to the size, with a coloured border stripe so images differ at the edges too.
 */
export function fixtureRgba(i: number, width = CELEBA_W, height = CELEBA_H): Uint8Array {
  const face = syntheticFacesU8(1, 77, i);
  const S = IMAGE_SIZE;
  const out = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const fy = Math.min(S - 1, Math.max(0, ((y + 0.5) * S) / height - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(S - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(S - 1, Math.max(0, ((x + 0.5) * S) / width - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(S - 1, x0 + 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const p = c * S * S;
        const v =
          (1 - wy) * ((1 - wx) * face[p + y0 * S + x0] + wx * face[p + y0 * S + x1]) +
          wy * ((1 - wx) * face[p + y1 * S + x0] + wx * face[p + y1 * S + x1]);
        out[(y * width + x) * 4 + c] = Math.round(v);
      }
      out[(y * width + x) * 4 + 3] = 255;
    }
  }
  // A stripe along the top whose colour encodes i.
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 4;
      out[p] = (i * 53) & 255;
      out[p + 1] = (i * 97 + 40) & 255;
      out[p + 2] = (i * 151 + 80) & 255;
    }
  }
  return out;
}

export function encodeJpeg(rgba: Uint8Array, width: number, height: number, quality = 92): Buffer {
  return jpeg.encode({ width, height, data: rgba }, quality).data;
}

export function encodePngFile(rgba: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength).copy(png.data);
  return PNG.sync.write(png);
}

export interface CelebAFixture {
  root: string;
  /** Number of JPEG files written (including the corrupt one). */
  count: number;
  /** Original RGBA pixels of image number n (1-based), before JPEG compression. */
  rgba: Map<number, Uint8Array>;
  corrupt: string;
  missing: string;
  /** Expected readable images per split. */
  expected: { train: number[]; valid: number[]; test: number[] };
}

export function celebaName(n: number): string {
  return `${String(n).padStart(6, '0')}.jpg`;
}

/**
 * A CelebA-layout folder: img_align_celeba/000001.jpg .. 0000NN.jpg (178x218 JPEGs) and
 * list_eval_partition.txt (at the root, or under Eval/). Images 1..train are split 0, then
 * valid, then test; image `corruptAt` is a truncated JPEG; one extra listed image is missing.
 */
export function makeCelebAFixture(
  root: string,
  opts: { train?: number; valid?: number; test?: number; corruptAt?: number; partitionUnderEval?: boolean; jpegCache?: Map<number, Buffer> } = {},
): CelebAFixture {
  const train = opts.train ?? 20;
  const valid = opts.valid ?? 6;
  const test = opts.test ?? 6;
  const count = train + valid + test;
  const corruptAt = opts.corruptAt ?? 7;
  mkdirSync(join(root, 'img_align_celeba'), { recursive: true });
  const rgba = new Map<number, Uint8Array>();
  const lines: string[] = [];
  const expected = { train: [] as number[], valid: [] as number[], test: [] as number[] };
  for (let n = 1; n <= count; n++) {
    const split = n <= train ? 0 : n <= train + valid ? 1 : 2;
    lines.push(`${celebaName(n)} ${split}`);
    const px = fixtureRgba(n);
    rgba.set(n, px);
    let bytes = opts.jpegCache?.get(n);
    if (!bytes) {
      bytes = encodeJpeg(px, CELEBA_W, CELEBA_H);
      opts.jpegCache?.set(n, bytes);
    }
    if (n === corruptAt) bytes = bytes.subarray(0, Math.floor(bytes.length / 3)); // truncated
    else expected[(['train', 'valid', 'test'] as const)[split]].push(n);
    writeFileSync(join(root, 'img_align_celeba', celebaName(n)), bytes);
  }
  const missing = celebaName(count + 1);
  lines.push(`${missing} 2`); // listed, not on disk
  const partDir = opts.partitionUnderEval ? join(root, 'Eval') : root;
  mkdirSync(partDir, { recursive: true });
  writeFileSync(join(partDir, 'list_eval_partition.txt'), lines.join('\n') + '\n');
  return { root, count, rgba, corrupt: `img_align_celeba/${celebaName(corruptAt)}`, missing, expected };
}

/**
 * A folder of mixed images, nested: PNGs and JPEGs of several sizes, one garbage .png, a
 * .txt that is not an image, and a hidden folder that must be ignored. Returns the readable
 * image paths (relative, sorted) and the garbage one.
 */
export function makeImageFolder(root: string, n = 12): { readable: string[]; garbage: string } {
  const sizes: [number, number][] = [
    [64, 64],
    [100, 80],
    [90, 140],
    [200, 150],
  ];
  const readable: string[] = [];
  for (let i = 0; i < n; i++) {
    const [w, h] = sizes[i % sizes.length];
    const sub = i % 3 === 0 ? '' : i % 3 === 1 ? 'a' : join('b', 'deep');
    mkdirSync(join(root, sub), { recursive: true });
    const png = i % 2 === 0;
    const name = `img${String(i).padStart(2, '0')}.${png ? 'png' : 'JPG'}`;
    const px = fixtureRgba(100 + i, w, h);
    writeFileSync(join(root, sub, name), png ? encodePngFile(px, w, h) : encodeJpeg(px, w, h));
    readable.push(sub ? `${sub.split(/[\\/]/).join('/')}/${name}` : name);
  }
  mkdirSync(join(root, 'a'), { recursive: true });
  writeFileSync(join(root, 'a', 'broken.png'), Buffer.from('definitely not a png file'));
  writeFileSync(join(root, 'notes.txt'), 'not an image');
  mkdirSync(join(root, '.hidden'), { recursive: true });
  writeFileSync(join(root, '.hidden', 'skip.png'), encodePngFile(fixtureRgba(1, 8, 8), 8, 8));
  return { readable: readable.sort(), garbage: 'a/broken.png' };
}

/** A linear gradient: R rises with x, G with y, B with x + y (exact values in float64). */
export function gradientImage(width: number, height: number): { rgba: Uint8Array; value: (c: number, x: number, y: number) => number } {
  const value = (c: number, x: number, y: number): number =>
    c === 0 ? 10 + (230 * x) / width : c === 1 ? 20 + (220 * y) / height : 15 + (110 * (x + y)) / (width + height);
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Pixel (x, y) holds the value at its centre, unrounded as far as uint8 allows.
      for (let c = 0; c < 3; c++) rgba[(y * width + x) * 4 + c] = Math.round(value(c, x + 0.5, y + 0.5));
      rgba[(y * width + x) * 4 + 3] = 255;
    }
  }
  return { rgba, value };
}

export function readBytes(path: string): Buffer {
  return readFileSync(path);
}
