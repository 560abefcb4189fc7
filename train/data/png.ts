// PNG output: image grids for reconstructions and samples (pngjs).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { IMAGE_SIZE } from './images.js';

export interface GridOptions {
  /** Integer upscale factor per image (nearest neighbour); default 1. */
  scale?: number;
  /** Pixels between tiles and around the grid; default 2. */
  padding?: number;
  /** Padding colour, RGB 0..255; default mid grey. */
  background?: [number, number, number];
  /** Image side (square, 3 channels); default 64. */
  size?: number;
}

/**
 * Lays out `n` NCHW float images in [-0.5, 0.5] (values outside are clamped) as a grid with
 * `cols` columns; returns the RGBA pixels and size.
 */
export function imageGrid(
  images: Float32Array,
  n: number,
  cols: number,
  opts: GridOptions = {},
): { width: number; height: number; data: Buffer } {
  const scale = Math.max(1, Math.floor(opts.scale ?? 1));
  const pad = Math.max(0, Math.floor(opts.padding ?? 2));
  const bg = opts.background ?? [128, 128, 128];
  if (!(n >= 1) || !Number.isInteger(n)) throw new Error(`imageGrid: n must be a positive integer, got ${n}`);
  const size = opts.size ?? IMAGE_SIZE;
  const plane = size * size;
  if (size < 1 || images.length < n * 3 * plane) {
    throw new Error(`imageGrid: ${images.length} values do not hold ${n} images of 3x${size}x${size}`);
  }
  cols = Math.max(1, Math.min(Math.floor(cols), n));
  const rows = Math.ceil(n / cols);
  const tile = size * scale;
  const width = cols * tile + (cols + 1) * pad;
  const height = rows * tile + (rows + 1) * pad;
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    data[i * 4] = bg[0];
    data[i * 4 + 1] = bg[1];
    data[i * 4 + 2] = bg[2];
    data[i * 4 + 3] = 255;
  }
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (tile + pad);
    const y0 = pad + Math.floor(k / cols) * (tile + pad);
    const base = k * 3 * plane;
    for (let y = 0; y < tile; y++) {
      const sy = Math.floor(y / scale);
      for (let x = 0; x < tile; x++) {
        const sx = Math.floor(x / scale);
        const p = ((y0 + y) * width + x0 + x) * 4;
        for (let c = 0; c < 3; c++) {
          const v = Math.round((images[base + c * plane + sy * size + sx] + 0.5) * 255);
          data[p + c] = v > 255 ? 255 : v >= 0 ? v : 0; // NaN -> 0
        }
      }
    }
  }
  return { width, height, data };
}

/** Encodes RGBA pixels as a PNG file's bytes. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  const png = new PNG({ width, height });
  Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength).copy(png.data);
  return PNG.sync.write(png);
}

/**
 * Writes a grid of `n` NCHW float images in [-0.5, 0.5] to a PNG at `path` (atomically:
 * temporary file, then rename), creating the folder. Returns the grid's pixel size.
 */
export function writeImageGrid(
  path: string,
  images: Float32Array,
  n: number,
  cols: number,
  opts: GridOptions = {},
): { width: number; height: number } {
  const { width, height, data } = imageGrid(images, n, cols, opts);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, encodePng(width, height, data));
  renameSync(tmp, path);
  return { width, height };
}
