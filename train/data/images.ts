// Image decoding in Node (JPEG through jpeg-js, PNG through pngjs) to interleaved RGBA, the
// layout both decoders produce. Crops, resizing and float conversion live in preprocess.ts,
// platform-free, and are re-exported here.
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { type Preprocess, type RgbaImage, DEFAULT_PREPROCESS, compositeOverBlack, preprocessImage } from './preprocess.js';

export * from './preprocess.js';

/** Detects the format from the first bytes: 'jpeg', 'png' or null. */
export function sniffFormat(bytes: Uint8Array): 'jpeg' | 'png' | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (
    bytes.length >= 8 &&
    bytes[0] === 0x89 &&
    bytes[1] === 0x50 &&
    bytes[2] === 0x4e &&
    bytes[3] === 0x47 &&
    bytes[4] === 0x0d &&
    bytes[5] === 0x0a &&
    bytes[6] === 0x1a &&
    bytes[7] === 0x0a
  ) {
    return 'png';
  }
  return null;
}

/** Largest image (in pixels) we agree to decode; a guard against decompression bombs. */
const MAX_PIXELS = 40e6;

/**
 * Decodes a JPEG or PNG file's bytes to RGBA. Throws an Error that says what is wrong for
 * anything unreadable (unknown format, truncated or corrupt data, absurd dimensions).
 * JPEG decoding is strict: a truncated file is an error, not a half-grey image.
 */
export function decodeImage(bytes: Uint8Array): RgbaImage {
  const format = sniffFormat(bytes);
  if (format === 'jpeg') {
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        tolerantDecoding: false,
        maxResolutionInMP: MAX_PIXELS / 1e6,
        maxMemoryUsageInMB: 1024,
      });
    } catch (e) {
      throw new Error(`corrupt JPEG: ${errorText(e)}`);
    }
    if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * 4) {
      throw new Error(`corrupt JPEG: decoded to ${img.width}x${img.height} with ${img.data.length} bytes`);
    }
    return { width: img.width, height: img.height, data: img.data };
  }
  if (format === 'png') {
    let png: PNG;
    try {
      png = checkPngSize(bytes) && PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (e) {
      throw new Error(`corrupt PNG: ${errorText(e)}`);
    }
    const data = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
    if (data.length !== png.width * png.height * 4) {
      throw new Error(`corrupt PNG: decoded to ${png.width}x${png.height} with ${data.length} bytes`);
    }
    compositeOverBlack(data);
    return { width: png.width, height: png.height, data };
  }
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(bytes.length === 0 ? 'empty file' : `not a JPEG or PNG (starts with ${head})`);
}

/** Rejects PNGs whose IHDR claims more than MAX_PIXELS before pngjs allocates for them. */
function checkPngSize(bytes: Uint8Array): true {
  if (bytes.length < 24) throw new Error('truncated before the IHDR chunk');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = view.getUint32(16);
  const h = view.getUint32(20);
  if (w === 0 || h === 0 || w * h > MAX_PIXELS) throw new Error(`unreasonable size ${w}x${h}`);
  return true;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Decode + preprocess a file's bytes into planar uint8. */
export function loadImageBytes(
  bytes: Uint8Array,
  pre: Preprocess = DEFAULT_PREPROCESS,
  out?: Uint8Array,
  outOffset = 0,
): Uint8Array {
  return preprocessImage(decodeImage(bytes), pre, out, outOffset);
}
