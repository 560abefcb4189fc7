// Preprocessing as the trainer does it, with no decoder and no Node API (the studio page
// decodes with the browser and shares this): centre crops and an antialiased resize to the
// model's 64x64, and the uint8 <-> [-0.5, 0.5] float conversions.
//
// Layout conventions: decoded images are interleaved RGBA uint8; prepared images are planar
// CHW uint8 (3 x S x S), so a batch is a straight copy into NCHW.

/** The side of the square images the model trains on. */
export const IMAGE_SIZE = 64;
/** Values per prepared image: 3 x 64 x 64. */
export const IMAGE_VALUES = 3 * IMAGE_SIZE * IMAGE_SIZE;

/**
 * How a source image becomes 64x64:
 * - `squash`: resize the whole image straight to 64x64, aspect ratio not kept (the seed's);
 * - `crop148` / `crop178`: centre crop of 148x148 / 178x178 (clamped to the image), then resize;
 * - `center`: the largest centred square, then resize.
 */
export type PreprocessMode = 'squash' | 'crop148' | 'crop178' | 'center';
export const PREPROCESS_MODES: readonly PreprocessMode[] = ['squash', 'crop148', 'crop178', 'center'];

/**
 * Resampling filter:
 * - `bilinear`: PIL's antialiased bilinear (a triangle filter widened by the downscale factor),
 *   what torchvision's `Resize` does on PIL images and so what the seed's pipeline did;
 * - `area`: exact area averaging (each output pixel is the mean of the input area it covers,
 *   fractional pixels weighted by coverage; OpenCV's INTER_AREA).
 */
export type ResizeFilter = 'bilinear' | 'area';
export const RESIZE_FILTERS: readonly ResizeFilter[] = ['bilinear', 'area'];

export interface Preprocess {
  mode: PreprocessMode;
  filter: ResizeFilter;
}
export const DEFAULT_PREPROCESS: Preprocess = { mode: 'squash', filter: 'bilinear' };

/** A decoded image: interleaved RGBA uint8, `width * height * 4` bytes. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export function isPreprocessMode(s: string): s is PreprocessMode {
  return (PREPROCESS_MODES as readonly string[]).includes(s);
}
export function isResizeFilter(s: string): s is ResizeFilter {
  return (RESIZE_FILTERS as readonly string[]).includes(s);
}

/**
 * Transparent pixels composited over black, in place (straight RGBA in, opaque RGBA out), so
 * colours hidden under alpha 0 don't leak into training; every decoder's output goes through it.
 */
export function compositeOverBlack(data: Uint8Array | Uint8ClampedArray): void {
  for (let i = 3; i < data.length; i += 4) {
    const a = data[i];
    if (a !== 255) {
      data[i - 3] = Math.round((data[i - 3] * a) / 255);
      data[i - 2] = Math.round((data[i - 2] * a) / 255);
      data[i - 1] = Math.round((data[i - 1] * a) / 255);
      data[i] = 255;
    }
  }
}

/** A crop rectangle in source pixels. */
export interface CropBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The region of a width x height image that `mode` keeps; centre crops are placed like
 * torchvision's CenterCrop (offset round((size - crop) / 2)).
 */
export function cropBox(width: number, height: number, mode: PreprocessMode): CropBox {
  if (mode === 'squash') return { x: 0, y: 0, width, height };
  const want = mode === 'crop148' ? 148 : mode === 'crop178' ? 178 : Math.min(width, height);
  const cw = Math.min(want, width);
  const ch = Math.min(want, height);
  return { x: Math.round((width - cw) / 2), y: Math.round((height - ch) / 2), width: cw, height: ch };
}

/** Resampling weights for one axis: output o reads input [start[o], start[o] + count[o]). */
interface AxisWeights {
  start: Int32Array;
  count: Int32Array;
  /** `maxCount` weights per output, zero-padded. */
  weights: Float32Array;
  maxCount: number;
}

const coeffCache = new Map<string, AxisWeights>();

/**
 * Weights for resampling the input span [0, inSize) to outSize samples (coordinates relative
 * to the crop). `bilinear` follows PIL's precompute_coeffs with the triangle filter, clamped
 * to the crop; `area` integrates the exact coverage of each output pixel's footprint.
 */
export function axisWeights(inSize: number, outSize: number, filter: ResizeFilter): AxisWeights {
  const key = `${inSize}/${outSize}/${filter}`;
  const hit = coeffCache.get(key);
  if (hit) return hit;
  const scale = inSize / outSize;
  const useArea = filter === 'area' && scale >= 1;
  const filterScale = Math.max(scale, 1);
  const support = useArea ? scale / 2 : filterScale; // triangle support is 1 (times the scale)
  const maxCount = Math.ceil(support) * 2 + 2;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxCount);
  const w = new Float64Array(maxCount);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    let lo: number;
    let hi: number;
    if (useArea) {
      const a = o * scale;
      const b = (o + 1) * scale;
      lo = Math.max(Math.floor(a), 0);
      hi = Math.min(Math.ceil(b), inSize);
      for (let i = lo; i < hi; i++) w[i - lo] = Math.max(0, Math.min(b, i + 1) - Math.max(a, i));
    } else {
      lo = Math.max(Math.trunc(center - support + 0.5), 0);
      hi = Math.min(Math.trunc(center + support + 0.5), inSize);
      for (let i = lo; i < hi; i++) {
        const t = Math.abs((i + 0.5 - center) / filterScale);
        w[i - lo] = t < 1 ? 1 - t : 0;
      }
    }
    let sum = 0;
    for (let i = lo; i < hi; i++) sum += w[i - lo];
    if (hi - lo > maxCount) throw new Error(`axisWeights: ${hi - lo} taps > ${maxCount}`);
    start[o] = lo;
    count[o] = hi - lo;
    for (let i = 0; i < hi - lo; i++) weights[o * maxCount + i] = sum > 0 ? w[i] / sum : 0;
  }
  const res = { start, count, weights, maxCount };
  coeffCache.set(key, res);
  return res;
}

/**
 * Crops `box` out of an interleaved image (`channels` bytes per pixel, the first three RGB)
 * and resizes it to size x size, writing planar CHW uint8 into `out` at `outOffset`.
 * Separable (horizontal pass, then vertical) in float32, rounded once at the end.
 */
export function resizeToPlanar(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  box: CropBox,
  size: number,
  filter: ResizeFilter,
  out: Uint8Array,
  outOffset = 0,
): void {
  if (box.x < 0 || box.y < 0 || box.width < 1 || box.height < 1 || box.x + box.width > width || box.y + box.height > height) {
    throw new Error(`crop ${JSON.stringify(box)} outside a ${width}x${height} image`);
  }
  const hw = axisWeights(box.width, size, filter);
  const vw = axisWeights(box.height, size, filter);
  // Horizontal pass over the rows of the crop: tmp is [row][c][ox].
  const rows = box.height;
  const tmp = new Float32Array(rows * 3 * size);
  const stride = width * channels;
  for (let r = 0; r < rows; r++) {
    const rowBase = (box.y + r) * stride + box.x * channels;
    const tBase = r * 3 * size;
    for (let o = 0; o < size; o++) {
      const s0 = hw.start[o];
      const n = hw.count[o];
      const wb = o * hw.maxCount;
      let acc0 = 0;
      let acc1 = 0;
      let acc2 = 0;
      let p = rowBase + s0 * channels;
      for (let k = 0; k < n; k++, p += channels) {
        const wk = hw.weights[wb + k];
        acc0 += wk * src[p];
        acc1 += wk * src[p + 1];
        acc2 += wk * src[p + 2];
      }
      tmp[tBase + o] = acc0;
      tmp[tBase + size + o] = acc1;
      tmp[tBase + 2 * size + o] = acc2;
    }
  }
  // Vertical pass.
  const plane = size * size;
  for (let oy = 0; oy < size; oy++) {
    const s0 = vw.start[oy];
    const n = vw.count[oy];
    const wb = oy * vw.maxCount;
    for (let c = 0; c < 3; c++) {
      const dst = outOffset + c * plane + oy * size;
      for (let ox = 0; ox < size; ox++) {
        let acc = 0;
        let t = (s0 * 3 + c) * size + ox;
        for (let k = 0; k < n; k++, t += 3 * size) acc += vw.weights[wb + k] * tmp[t];
        const v = Math.round(acc);
        out[dst + ox] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
}

/** Crop + resize a decoded image to planar 3 x size x size uint8. */
export function preprocessImage(
  img: RgbaImage,
  pre: Preprocess = DEFAULT_PREPROCESS,
  out: Uint8Array = new Uint8Array(3 * IMAGE_SIZE * IMAGE_SIZE),
  outOffset = 0,
  size = IMAGE_SIZE,
): Uint8Array {
  const box = cropBox(img.width, img.height, pre.mode);
  resizeToPlanar(img.data, img.width, img.height, 4, box, size, pre.filter, out, outOffset);
  return out;
}

/** uint8 [0, 255] -> float32 [-0.5, 0.5] (x / 255 - 0.5), the seed's scaling. */
export function u8ToFloat(src: Uint8Array, out: Float32Array = new Float32Array(src.length), outOffset = 0): Float32Array {
  const lut = U8_LUT;
  for (let i = 0; i < src.length; i++) out[outOffset + i] = lut[src[i]];
  return out;
}

const U8_LUT = (() => {
  const t = new Float32Array(256);
  for (let i = 0; i < 256; i++) t[i] = i / 255 - 0.5;
  return t;
})();

/** float [-0.5, 0.5] -> uint8, clamped and rounded (for writing images). */
export function floatToU8(src: ArrayLike<number>, out: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  for (let i = 0; i < src.length; i++) {
    const v = Math.round((src[i] + 0.5) * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : Number.isNaN(v) ? 0 : v;
  }
  return out;
}
