// Synthetic faces: a deterministic, file-free 64x64 dataset so the quick start trains out of
// the box. Image i of seed s is always the same picture (each image has its own generator,
// seeded from (s, i)), so the dataset is index-addressable and any batch can be rebuilt.
//
// Each face is drawn with antialiased signed-distance shapes in a face-local frame (the face
// is placed, scaled and tilted): background gradient with soft blobs, clothes and neck, hair
// behind the head (short, bob or long), ears, an egg-shaped face with side lighting, a hair
// cap with a hairline or fringe, brows, eyes (white, iris, pupil, lid line, highlight), a nose
// shadow with nostrils, a mouth (smile, neutral or open with teeth), and sometimes blush,
// a beard or glasses.
import { Rng } from '../../engine/random.js';
import { IMAGE_SIZE, u8ToFloat } from './preprocess.js';

const S = IMAGE_SIZE;
const N = S * S;

type RGB = [number, number, number];

/** The synthetic dataset's seed and split sizes: train, valid and test are consecutive index ranges. */
export const SYNTHETIC_DEFAULTS = { seed: 0, train: 50_000, valid: 2_000, test: 2_000 };

/** A 32-bit hash of (seed, index) for per-image generators. */
export function mixSeed(seed: number, index: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (index >>> 0) ^ (h >>> 15), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Approximate signed distance (pixels) to an axis-aligned ellipse, negative inside. */
function ellipseDist(dx: number, dy: number, rx: number, ry: number): number {
  const ax = dx / (rx * rx);
  const ay = dy / (ry * ry);
  const f = dx * ax + dy * ay - 1;
  const g = 2 * Math.sqrt(ax * ax + ay * ay) + 1e-9;
  return f / g;
}

function len2(x: number, y: number): number {
  return Math.sqrt(x * x + y * y);
}

function cov(d: number): number {
  const c = 0.5 - d;
  return c <= 0 ? 0 : c >= 1 ? 1 : c;
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

function mixRgb(a: RGB, b: RGB, t: number): RGB {
  return [lerp(a[0], b[0], t), lerp(a[1], b[1], t), lerp(a[2], b[2], t)];
}

function scaleRgb(a: RGB, k: number): RGB {
  return [a[0] * k, a[1] * k, a[2] * k];
}

function hsv(h: number, s: number, v: number): RGB {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  switch (((i % 6) + 6) % 6) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

const SKIN_DARK: RGB = [0.33, 0.2, 0.13];
const SKIN_MID: RGB = [0.72, 0.5, 0.36];
const SKIN_LIGHT: RGB = [0.98, 0.84, 0.74];

const HAIR: RGB[] = [
  [0.06, 0.05, 0.05], // black
  [0.18, 0.11, 0.07], // dark brown
  [0.35, 0.22, 0.12], // brown
  [0.55, 0.27, 0.12], // auburn
  [0.82, 0.66, 0.38], // blonde
  [0.93, 0.84, 0.6], // light blonde
  [0.62, 0.6, 0.58], // grey
  [0.88, 0.87, 0.85], // white
];
const HAIR_WEIGHTS = [0.24, 0.24, 0.18, 0.07, 0.1, 0.05, 0.07, 0.05];

const IRIS: RGB[] = [
  [0.25, 0.15, 0.08],
  [0.4, 0.26, 0.12],
  [0.22, 0.4, 0.62],
  [0.3, 0.45, 0.3],
  [0.1, 0.08, 0.07],
];

/** Draws shapes into a float RGB canvas in a face-local frame (origin at the face centre). */
class Canvas {
  readonly r = new Float32Array(N);
  readonly g = new Float32Array(N);
  readonly b = new Float32Array(N);
  /** Face-local coordinates of each pixel centre. */
  readonly lx = new Float32Array(N);
  readonly ly = new Float32Array(N);
  private cx = 0;
  private cy = 0;
  private cos = 1;
  private sin = 0;

  setFrame(cx: number, cy: number, angle: number): void {
    this.cx = cx;
    this.cy = cy;
    this.cos = Math.cos(angle);
    this.sin = Math.sin(angle);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        this.lx[y * S + x] = this.cos * dx + this.sin * dy;
        this.ly[y * S + x] = -this.sin * dx + this.cos * dy;
      }
    }
  }

  /**
   * Blends `color` into the pixels whose local coordinates lie within `radius` of local point
   * (x, y), weighted by coverage(lx, ly) * opacity; `shade`, if given, scales the colour.
   */
  paint(
    x: number,
    y: number,
    radius: number | readonly [number, number],
    coverage: (lx: number, ly: number) => number,
    color: RGB,
    opacity = 1,
    shade?: (lx: number, ly: number) => number,
  ): void {
    const px = this.cx + this.cos * x - this.sin * y;
    const py = this.cy + this.sin * x + this.cos * y;
    const ex = typeof radius === 'number' ? radius : radius[0];
    const ey = typeof radius === 'number' ? radius : radius[1];
    const ac = Math.abs(this.cos);
    const as = Math.abs(this.sin);
    const hw = ac * ex + as * ey;
    const hh = as * ex + ac * ey;
    const x0 = Math.max(0, Math.floor(px - hw - 1));
    const x1 = Math.min(S - 1, Math.ceil(px + hw + 1));
    const y0 = Math.max(0, Math.floor(py - hh - 1));
    const y1 = Math.min(S - 1, Math.ceil(py + hh + 1));
    const { r, g, b, lx, ly } = this;
    for (let yy = y0; yy <= y1; yy++) {
      for (let xx = x0; xx <= x1; xx++) {
        const i = yy * S + xx;
        const a = coverage(lx[i], ly[i]) * opacity;
        if (a <= 0) continue;
        const k = shade ? shade(lx[i], ly[i]) : 1;
        r[i] += (color[0] * k - r[i]) * a;
        g[i] += (color[1] * k - g[i]) * a;
        b[i] += (color[2] * k - b[i]) * a;
      }
    }
  }

  ellipse(x: number, y: number, rx: number, ry: number, color: RGB, opacity = 1, angle = 0): void {
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const ca = Math.abs(c);
    const sa = Math.abs(s);
    this.paint(
      x,
      y,
      [ca * rx + sa * ry, sa * rx + ca * ry],
      (u, v) => {
        const du = u - x;
        const dv = v - y;
        return cov(ellipseDist(c * du + s * dv, -s * du + c * dv, rx, ry));
      },
      color,
      opacity,
    );
  }

  /** Writes planar uint8 RGB into out at offset. */
  toPlanar(out: Uint8Array, offset: number): void {
    // Uint8ClampedArray stores clamp and round (half to even) in one go.
    const clamped = new Uint8ClampedArray(out.buffer, out.byteOffset + offset, 3 * N);
    const planes = [this.r, this.g, this.b];
    for (let c = 0; c < 3; c++) {
      const p = planes[c];
      const base = c * N;
      for (let i = 0; i < N; i++) clamped[base + i] = p[i] * 255;
    }
  }
}

function pick<T>(rng: Rng, items: readonly T[], weights?: readonly number[]): T {
  if (!weights) return items[rng.int(items.length)];
  let u = rng.next() * weights.reduce((a, w) => a + w, 0);
  for (let i = 0; i < items.length; i++) {
    u -= weights[i];
    if (u < 0) return items[i];
  }
  return items[items.length - 1];
}

function range(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.next();
}

/** The drawn features' shared measures: placement, face size, colours and style. */
interface Face {
  scale: number;
  rx: number;
  ry: number;
  /** Signed distance to the face outline (negative inside). */
  faceD: (u: number, v: number) => number;
  skin: RGB;
  skinShadow: RGB;
  hair: RGB;
  cloth: RGB;
  /** Side lighting, -0.25 .. 0.25. */
  light: number;
  style: 'short' | 'bob' | 'long' | 'bald' | 'buzz';
}

/** The eyes' measures (drawn before the brows, which sit above them). */
interface Eyes {
  y: number;
  x: number;
  rx: number;
  ry: number;
}

// Each part below draws from the image's generator in a fixed order: reordering the calls
// changes every synthetic image (the dataset's hash is checked by test/data.test.ts).

/** Renders synthetic face `index` of `seed` as planar 3x64x64 uint8 into out at offset. */
export function renderSyntheticFace(seed: number, index: number, out: Uint8Array, offset = 0, canvas = new Canvas()): void {
  const rng = new Rng(mixSeed(seed, index));
  const cv = canvas;
  const scale = range(rng, 0.82, 1.12);
  const fcx = 32 + range(rng, -4, 4);
  const fcy = 31 + range(rng, -3, 4);
  cv.setFrame(fcx, fcy, range(rng, -0.16, 0.16));
  drawBackground(rng, cv);
  const f = faceMeasures(rng, scale);
  drawHairBehind(rng, cv, f);
  drawBody(rng, cv, f);
  cv.paint(0, 0, [f.rx + 1, f.ry + 1], (u, v) => cov(f.faceD(u, v)), f.skin, 1, (u, v) => 1 + f.light * (u / f.rx) - 0.12 * Math.max(0, len2(u / f.rx, v / f.ry) - 0.55));
  drawBlush(rng, cv, f);
  drawHairCap(rng, cv, f);
  drawBeard(rng, cv, f);
  const eyes = drawEyesAndBrows(rng, cv, f);
  drawNose(rng, cv, f);
  drawMouth(rng, cv, f);
  drawGlasses(rng, cv, f, eyes);
  cv.toPlanar(out, offset);
}

/** A two-colour gradient plus a few soft blobs. */
function drawBackground(rng: Rng, cv: Canvas): void {
  const bgHue = rng.next();
  const bgA = hsv(bgHue, range(rng, 0.05, 0.6), range(rng, 0.25, 0.95));
  const bgB = hsv((bgHue + range(rng, -0.15, 0.15) + 1) % 1, range(rng, 0.05, 0.6), range(rng, 0.15, 0.9));
  const gAngle = range(rng, 0, Math.PI * 2);
  const gx = Math.cos(gAngle) / 64;
  const gy = Math.sin(gAngle) / 64;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x - 32) * gx + (y - 32) * gy));
      const i = y * S + x;
      cv.r[i] = lerp(bgA[0], bgB[0], t);
      cv.g[i] = lerp(bgA[1], bgB[1], t);
      cv.b[i] = lerp(bgA[2], bgB[2], t);
    }
  }
  const blobs = rng.int(3);
  for (let k = 0; k < blobs; k++) {
    const bx = range(rng, -36, 36);
    const by = range(rng, -36, 10);
    const br = range(rng, 6, 16);
    const col = hsv(rng.next(), range(rng, 0, 0.5), range(rng, 0.3, 1));
    cv.paint(bx, by, br * 1.6, (u, v) => {
      const d = len2(u - bx, v - by) / br;
      return d >= 1.5 ? 0 : 0.5 * Math.exp(-2 * d * d);
    }, col);
  }
}

/** Face geometry (local units are pixels), colours and hair style. */
function faceMeasures(rng: Rng, scale: number): Face {
  const rx = range(rng, 12.5, 15) * scale;
  const ry = rx * range(rng, 1.18, 1.42);
  const jaw = range(rng, 0.08, 0.3); // how much the lower face narrows
  const faceD = (u: number, v: number): number => {
    const k = v > 0 ? 1 - jaw * Math.min(1, v / ry) : 1;
    return ellipseDist(u / k, v, rx, ry) * Math.min(1, k + 0.1);
  };
  const tone = Math.pow(rng.next(), 0.55); // most faces light to mid, some dark
  let skin = tone < 0.5 ? mixRgb(SKIN_DARK, SKIN_MID, tone * 2) : mixRgb(SKIN_MID, SKIN_LIGHT, (tone - 0.5) * 2);
  skin = [skin[0] * range(rng, 0.95, 1.05), skin[1] * range(rng, 0.95, 1.04), skin[2] * range(rng, 0.92, 1.06)];
  let hair = pick(rng, HAIR, HAIR_WEIGHTS);
  if (rng.next() < 0.04) hair = hsv(rng.next(), range(rng, 0.5, 0.8), range(rng, 0.4, 0.8)); // dyed
  hair = scaleRgb(hair, range(rng, 0.85, 1.12));
  const cloth = hsv(rng.next(), range(rng, 0.1, 0.8), range(rng, 0.15, 0.9));
  const light = range(rng, -0.25, 0.25);
  const style = pick(rng, ['short', 'bob', 'long', 'bald', 'buzz'] as const, [0.32, 0.2, 0.3, 0.06, 0.12]);
  return { scale, rx, ry, faceD, skin, skinShadow: scaleRgb(skin, 0.78), hair, cloth, light, style };
}

/** Long hair and bobs fall behind the head and shoulders. */
function drawHairBehind(rng: Rng, cv: Canvas, f: Face): void {
  if (f.style !== 'long' && f.style !== 'bob') return;
  const hx = f.rx * range(rng, 1.22, 1.45);
  const top = -f.ry * 1.12;
  const bottom = f.style === 'long' ? f.ry * range(rng, 1.4, 2.6) : f.ry * range(rng, 0.55, 0.85);
  const hy = (bottom - top) / 2;
  const hc = (bottom + top) / 2;
  cv.paint(0, hc, [hx * 1.4 + 1, hy + 1], (u, v) => {
    const k = v > 0 ? 1 + 0.15 * (v / hy) : 1; // widen a little towards the bottom
    return cov(ellipseDist(u / k, v - hc, hx, hy));
  }, f.hair, 1, (u) => 1 + 0.15 * f.light * (u / hx));
}

/** Clothes, neck and ears. */
function drawBody(rng: Rng, cv: Canvas, f: Face): void {
  const { rx, ry } = f;
  const shoulderY = ry * range(rng, 1.55, 1.85);
  const shoulderW = rx * range(rng, 2.2, 2.9);
  cv.ellipse(0, shoulderY + ry * 0.9, shoulderW, ry * 1.15, f.cloth);
  const neckW = rx * range(rng, 0.5, 0.7);
  cv.paint(0, (shoulderY + 2) / 2, [neckW + 1, (shoulderY + 2) / 2 + 1], (u, v) => {
    const side = cov(Math.abs(u) - neckW);
    const vertical = cov(v - (shoulderY + 2)) * cov(-v);
    return Math.min(side, vertical);
  }, f.skinShadow);
  const earY = range(rng, -0.1, 0.12) * ry;
  const earR = rx * range(rng, 0.16, 0.24);
  for (const sgn of [-1, 1]) cv.ellipse(sgn * rx * 0.97, earY, earR, earR * 1.6, f.skinShadow);
}

function drawBlush(rng: Rng, cv: Canvas, f: Face): void {
  if (rng.next() >= 0.3) return;
  const blush: RGB = [Math.min(1, f.skin[0] * 1.05 + 0.05), f.skin[1] * 0.8, f.skin[2] * 0.8];
  for (const sgn of [-1, 1]) {
    const bx = sgn * f.rx * 0.55;
    const by = f.ry * 0.25;
    cv.paint(bx, by, f.rx * 0.35, (u, v) => {
      const d = len2(u - bx, v - by) / (f.rx * 0.25);
      return d > 1.4 ? 0 : 0.5 * Math.exp(-2 * d * d);
    }, blush);
  }
}

/** Hair on top: a cap over the forehead down to a hairline (straight, side-parted or fringe), and side locks. */
function drawHairCap(rng: Rng, cv: Canvas, f: Face): void {
  if (f.style === 'bald') return;
  const { rx, ry } = f;
  const capRx = rx * 1.1;
  const capRy = ry * 1.08;
  const capCy = -ry * 0.04;
  const hairline = -ry * (f.style === 'buzz' ? range(rng, 0.5, 0.62) : range(rng, 0.28, 0.52));
  const slant = range(rng, -0.35, 0.35);
  const curve = range(rng, -0.6, 0.4) * ry * 0.25;
  const capColor = f.style === 'buzz' ? mixRgb(f.hair, f.skin, 0.35) : f.hair;
  cv.paint(0, capCy - capRy * 0.4, [capRx + 1, capRy * 0.6 + 2], (u, v) => {
    const inCap = cov(ellipseDist(u, v - capCy, capRx, capRy));
    const t = u / rx;
    const line = hairline + slant * u + curve * (1 - t * t);
    return Math.min(inCap, cov(v - line));
  }, capColor, 1, (u) => 1 + 0.15 * f.light * (u / rx));
  if (f.style !== 'long' && f.style !== 'bob') return;
  for (const sgn of [-1, 1]) {
    cv.ellipse(sgn * rx * 0.95, -ry * 0.1, rx * range(rng, 0.16, 0.26), ry * range(rng, 0.45, 0.65), f.hair, 1, -sgn * 0.08);
  }
}

function drawBeard(rng: Rng, cv: Canvas, f: Face): void {
  if (f.style === 'long' || rng.next() >= 0.12) return;
  const beardCol = mixRgb(f.hair, f.skin, range(rng, 0.05, 0.3));
  const top = f.ry * range(rng, 0.15, 0.3);
  cv.paint(0, f.ry * 0.6, f.ry + 2, (u, v) => Math.min(cov(f.faceD(u, v) - 0.8), cov(top - v + 0.25 * Math.abs(u))), beardCol);
}

/** Brows, then eyes (white, iris, pupil, highlight, lid; or closed); returns the eyes' measures. */
function drawEyesAndBrows(rng: Rng, cv: Canvas, f: Face): Eyes {
  const { rx, ry } = f;
  const eyeY = -ry * range(rng, 0.05, 0.18);
  const eyeX = rx * range(rng, 0.36, 0.46);
  const eyeRx = rx * range(rng, 0.17, 0.23);
  const eyeRy = eyeRx * range(rng, 0.48, 0.7);
  const iris = pick(rng, IRIS);
  const gaze = range(rng, -0.3, 0.3) * eyeRx;
  const lid = scaleRgb(mixRgb(f.hair, [0.1, 0.07, 0.06], 0.5), 0.8);
  const closed = rng.next() < 0.05;
  drawBrows(rng, cv, f, { y: eyeY, x: eyeX, rx: eyeRx, ry: eyeRy });
  for (const sgn of [-1, 1]) {
    const ex = sgn * eyeX;
    if (closed) {
      cv.paint(ex, eyeY, eyeRx + 2, (u, v) => {
        const du = u - ex;
        const dv = v - eyeY - 0.25 * eyeRy * (1 - (du * du) / (eyeRx * eyeRx));
        return Math.min(cov(Math.abs(dv) - 0.45), cov(Math.abs(du) - eyeRx));
      }, lid);
      continue;
    }
    // Socket shadow, white, iris, pupil, highlight, upper lid.
    cv.ellipse(ex, eyeY - 0.3, eyeRx * 1.25, eyeRy * 1.5, f.skinShadow, 0.35);
    cv.ellipse(ex, eyeY, eyeRx, eyeRy, EYE_WHITE);
    const ir = Math.min(eyeRy * 1.05, eyeRx * 0.62);
    const ix = ex + gaze;
    const inEye = (u: number, v: number) => cov(ellipseDist(u - ex, v - eyeY, eyeRx, eyeRy));
    cv.paint(ix, eyeY, ir + 1, (u, v) => Math.min(cov(len2(u - ix, v - eyeY) - ir), inEye(u, v)), iris);
    cv.paint(ix, eyeY, ir + 1, (u, v) => Math.min(cov(len2(u - ix, v - eyeY) - ir * 0.5), inEye(u, v)), [0.03, 0.03, 0.03]);
    cv.ellipse(ix + ir * 0.35, eyeY - ir * 0.35, 0.45, 0.45, [1, 1, 1], 0.8);
    cv.paint(ex, eyeY - eyeRy, eyeRx + 2, (u, v) => {
      const d = ellipseDist(u - ex, v - eyeY, eyeRx * 1.05, eyeRy * 1.05);
      return v < eyeY ? cov(Math.abs(d) - 0.55) : 0;
    }, lid);
  }
  return { y: eyeY, x: eyeX, rx: eyeRx, ry: eyeRy };
}

const EYE_WHITE: RGB = [0.93, 0.92, 0.9];

/** Brows: an arc (an ellipse bent downwards) above each eye. */
function drawBrows(rng: Rng, cv: Canvas, f: Face, eye: Eyes): void {
  const browY = eye.y - eye.ry - f.ry * range(rng, 0.1, 0.18);
  const browRx = eye.rx * range(rng, 1.05, 1.35);
  const browRy = range(rng, 0.6, 1.15) * f.scale;
  const browTilt = range(rng, -0.25, 0.2);
  const browCol = mixRgb(f.hair, [0.08, 0.06, 0.05], f.hair[0] > 0.6 ? 0.45 : 0.15);
  for (const sgn of [-1, 1]) {
    const bx = sgn * eye.x;
    cv.paint(bx, browY, browRx + 2, (u, v) => {
      const du = (u - bx) * sgn;
      const dv = v - browY + 0.25 * (du * du) / browRx + browTilt * du;
      return cov(ellipseDist(du, dv, browRx, browRy));
    }, browCol, 0.92);
  }
}

/** A soft shadow on the lit-away side and two nostrils. */
function drawNose(rng: Rng, cv: Canvas, f: Face): void {
  const noseY = f.ry * range(rng, 0.18, 0.3);
  const noseW = f.rx * range(rng, 0.13, 0.2);
  const noseSide = f.light >= 0 ? -1 : 1;
  cv.ellipse(noseSide * noseW * 0.6, noseY - f.ry * 0.15, noseW * 0.45, f.ry * 0.2, f.skinShadow, 0.45);
  cv.ellipse(0, noseY + 0.3, noseW * 1.1, noseW * 0.55, f.skinShadow, 0.5);
  for (const sgn of [-1, 1]) cv.ellipse(sgn * noseW * 0.5, noseY + 0.5, 0.75 * f.scale, 0.5 * f.scale, scaleRgb(f.skin, 0.45), 0.85);
}

/** A smile, a neutral mouth, or an open one (or grin) with teeth. */
function drawMouth(rng: Rng, cv: Canvas, f: Face): void {
  const mouthY = f.ry * range(rng, 0.5, 0.6);
  const mouthW = f.rx * range(rng, 0.32, 0.5);
  const lip: RGB = [Math.min(1, f.skin[0] * 0.85 + 0.12), f.skin[1] * 0.6, f.skin[2] * 0.62];
  const mood = pick(rng, ['smile', 'neutral', 'open', 'grin'] as const, [0.35, 0.3, 0.12, 0.23]);
  if (mood === 'neutral') {
    const lipH = range(rng, 1.0, 1.8) * f.scale;
    cv.ellipse(0, mouthY, mouthW, lipH, lip);
    cv.paint(0, mouthY, mouthW + 2, (u, v) => Math.min(cov(Math.abs(v - mouthY) - 0.35), cov(Math.abs(u) - mouthW * 0.95)), scaleRgb(lip, 0.55));
  } else if (mood === 'smile') {
    const bend = range(rng, 1.2, 2.6) * f.scale;
    cv.paint(0, mouthY, mouthW + 2, (u, v) => {
      const t = u / mouthW;
      const centre = mouthY + bend * (1 - t * t) * 0.5;
      const thick = 0.55 + 0.9 * (1 - t * t);
      return Math.min(cov(Math.abs(v - centre) - thick), cov(Math.abs(u) - mouthW));
    }, lip);
    cv.paint(0, mouthY, mouthW + 2, (u, v) => {
      const t = u / mouthW;
      return Math.min(cov(Math.abs(v - mouthY - bend * (1 - t * t) * 0.5) - 0.3), cov(Math.abs(u) - mouthW * 0.97));
    }, scaleRgb(lip, 0.5));
  } else {
    // A dark D-shape with a band of teeth, lips around it.
    const openH = (mood === 'open' ? range(rng, 2.2, 3.4) : range(rng, 1.6, 2.4)) * f.scale;
    const mouthD = (u: number, v: number) => {
      const dv = v - mouthY;
      return dv < 0 ? Math.max(-dv - 0.6, Math.abs(u) - mouthW + dv * 0.3) : ellipseDist(u, dv, mouthW, openH);
    };
    cv.paint(0, mouthY, mouthW + 3, (u, v) => cov(mouthD(u, v) - 0.9), lip);
    cv.paint(0, mouthY, mouthW + 3, (u, v) => cov(mouthD(u, v)), [0.22, 0.06, 0.06]);
    cv.paint(0, mouthY, mouthW + 3, (u, v) => Math.min(cov(mouthD(u, v) + 0.2), cov(v - mouthY - openH * 0.45)), [0.94, 0.92, 0.86]);
  }
}

/** Sometimes: two rims, their arms and a bridge. */
function drawGlasses(rng: Rng, cv: Canvas, f: Face, eye: Eyes): void {
  if (rng.next() >= 0.1) return;
  const frame: RGB = rng.next() < 0.7 ? [0.06, 0.05, 0.05] : hsv(rng.next(), 0.6, 0.5);
  const gr = eye.rx * range(rng, 1.35, 1.6);
  const gry = gr * range(rng, 0.75, 1);
  const thick = range(rng, 0.35, 0.7);
  const { x: eyeX, y: eyeY } = eye;
  for (const sgn of [-1, 1]) {
    const gxc = sgn * eyeX;
    cv.paint(gxc, eyeY, gr + 2, (u, v) => cov(Math.abs(ellipseDist(u - gxc, v - eyeY, gr, gry)) - thick), frame);
    cv.paint(sgn * (eyeX + gr + f.rx * 0.15), eyeY, f.rx * 0.2 + 2, (u, v) => Math.min(cov(Math.abs(v - eyeY + 0.5) - thick), cov(Math.abs(u - sgn * (eyeX + gr + f.rx * 0.1)) - f.rx * 0.12)), frame);
  }
  cv.paint(0, eyeY, eyeX, (u, v) => Math.min(cov(Math.abs(v - eyeY + 0.3 * gry) - thick), cov(Math.abs(u) - (eyeX - gr) - 0.5)), frame);
}

/** Renders `count` faces starting at `start` as planar NCHW uint8 (count x 3 x 64 x 64). */
export function syntheticFacesU8(count: number, seed: number, start = 0): Uint8Array {
  const out = new Uint8Array(count * 3 * N);
  const canvas = new Canvas();
  for (let k = 0; k < count; k++) renderSyntheticFace(seed, start + k, out, k * 3 * N, canvas);
  return out;
}

/** `count` faces of `seed` (indices start..start+count-1) as NCHW float32 in [-0.5, 0.5]. */
export function syntheticFaces(count: number, seed: number, start = 0): Float32Array {
  return u8ToFloat(syntheticFacesU8(count, seed, start));
}

/** Renders faces for arbitrary indices into `out` (NCHW uint8) — what batch assembly uses. */
export function renderSyntheticFaces(seed: number, indices: ArrayLike<number>, out: Uint8Array, offset = 0): void {
  const canvas = new Canvas();
  for (let k = 0; k < indices.length; k++) renderSyntheticFace(seed, indices[k], out, offset + k * 3 * N, canvas);
}
