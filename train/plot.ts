// Line charts as PNG (pngjs) with a tiny rasteriser: antialiased polylines, axes with "nice"
// ticks (linear, or decades for a log-scale y axis as in the seed's loss figures), grid lines,
// a legend, and text in the built-in 5x7 bitmap font (train/font.ts). No plotting dependency.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { writeFileAtomic } from './atomic.js';
import { GLYPH_H, ADVANCE, glyph, textWidth } from './font.js';

export type Rgb = [number, number, number];

export interface Series {
  label: string;
  x: readonly number[];
  y: readonly number[];
  color?: Rgb;
  /** Line width in pixels (default 2). */
  width?: number;
  /** Draw a dot at each point (for sparse series such as validation). */
  markers?: boolean;
}

export interface ChartSpec {
  title: string;
  xLabel?: string;
  yLabel?: string;
  logY?: boolean;
  series: Series[];
}

export interface ChartOptions {
  width?: number;
  height?: number;
}

/** tab10, the colours people know from matplotlib. */
export const PALETTE: Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

/** An RGBA canvas with the few primitives the charts need. */
export class Canvas {
  readonly data: Buffer;

  constructor(
    readonly width: number,
    readonly height: number,
    bg: Rgb = [255, 255, 255],
  ) {
    this.data = Buffer.alloc(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      this.data[i * 4] = bg[0];
      this.data[i * 4 + 1] = bg[1];
      this.data[i * 4 + 2] = bg[2];
      this.data[i * 4 + 3] = 255;
    }
  }

  /** Blends `color` at (x, y) with opacity `a` in [0, 1]. */
  blend(x: number, y: number, color: Rgb, a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || !(a > 0)) return;
    const p = (y * this.width + x) * 4;
    const t = Math.min(1, a);
    for (let c = 0; c < 3; c++) this.data[p + c] = Math.round(this.data[p + c] * (1 - t) + color[c] * t);
  }

  fillRect(x0: number, y0: number, w: number, h: number, color: Rgb, a = 1): void {
    for (let y = Math.max(0, y0); y < Math.min(this.height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(this.width, x0 + w); x++) this.blend(x, y, color, a);
    }
  }

  hline(x0: number, x1: number, y: number, color: Rgb, a = 1): void {
    this.fillRect(Math.min(x0, x1), y, Math.abs(x1 - x0) + 1, 1, color, a);
  }

  vline(x: number, y0: number, y1: number, color: Rgb, a = 1): void {
    this.fillRect(x, Math.min(y0, y1), 1, Math.abs(y1 - y0) + 1, color, a);
  }

  /** Text with its top-left corner at (x, y); `vertical` draws it rotated 90 degrees anticlockwise (reading upwards). */
  text(s: string, x: number, y: number, color: Rgb, scale = 1, vertical = false): void {
    let cx = 0;
    for (const ch of s) {
      const rows = glyph(ch);
      for (let r = 0; r < GLYPH_H; r++) {
        for (let c = 0; c < 5; c++) {
          if (!((rows[r] >> (4 - c)) & 1)) continue;
          for (let sy = 0; sy < scale; sy++) {
            for (let sx = 0; sx < scale; sx++) {
              const gx = (cx + c) * scale + sx;
              const gy = r * scale + sy;
              if (vertical) this.blend(x + gy, y - gx, color, 1);
              else this.blend(x + gx, y + gy, color, 1);
            }
          }
        }
      }
      cx += ADVANCE;
    }
  }

  /** PNG file bytes. */
  png(): Buffer {
    const png = new PNG({ width: this.width, height: this.height });
    this.data.copy(png.data);
    return PNG.sync.write(png);
  }
}

/**
 * Antialiased polyline: each pixel's coverage is the largest over the segments (so joints do
 * not darken), from its distance to the segment; then blended once. Points that are not
 * finite break the line.
 */
export function drawPolyline(cv: Canvas, pts: readonly [number, number][], color: Rgb, width = 2, clip?: { x0: number; y0: number; x1: number; y1: number }): void {
  const half = width / 2;
  const cov = new Map<number, number>();
  const c = clip ?? { x0: 0, y0: 0, x1: cv.width - 1, y1: cv.height - 1 };
  const plot = (ax: number, ay: number, bx: number, by: number) => {
    const minX = Math.max(c.x0, Math.floor(Math.min(ax, bx) - half - 1));
    const maxX = Math.min(c.x1, Math.ceil(Math.max(ax, bx) + half + 1));
    const minY = Math.max(c.y0, Math.floor(Math.min(ay, by) - half - 1));
    const maxY = Math.min(c.y1, Math.ceil(Math.max(ay, by) + half + 1));
    const dx = bx - ax;
    const dy = by - ay;
    const len2 = dx * dx + dy * dy;
    for (let y = minY; y <= maxY; y++) {
      for (let x = minX; x <= maxX; x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = ax + t * dx - px;
        const ey = ay + t * dy - py;
        const d = Math.sqrt(ex * ex + ey * ey);
        const a = Math.min(1, half + 0.5 - d);
        if (a <= 0) continue;
        const k = y * cv.width + x;
        if ((cov.get(k) ?? 0) < a) cov.set(k, a);
      }
    }
  };
  let prev: [number, number] | null = null;
  for (const p of pts) {
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) {
      prev = null;
      continue;
    }
    if (prev) plot(prev[0], prev[1], p[0], p[1]);
    else plot(p[0], p[1], p[0], p[1]);
    prev = p;
  }
  for (const [k, a] of cov) cv.blend(k % cv.width, Math.floor(k / cv.width), color, a);
}

/** About `target` "nice" tick values (1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Decade ticks (and 2x, 5x ticks when the range spans few decades) of a log axis. */
export function logTicks(lo: number, hi: number): { major: number[]; minor: number[] } {
  const a = Math.floor(Math.log10(lo) + 1e-9);
  const b = Math.ceil(Math.log10(hi) - 1e-9);
  const major: number[] = [];
  const minor: number[] = [];
  const few = Math.log10(hi / lo) <= 2.5;
  for (let e = a; e <= b; e++) {
    for (let m = 1; m < 10; m++) {
      const v = e >= 0 ? m * 10 ** e : m / 10 ** -e; // exact decimals (1e-5, not 9.999e-6)
      if (v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
      if (m === 1 || (few && (m === 2 || m === 5))) major.push(v);
      else minor.push(v);
    }
  }
  return { major, minor };
}

/** A compact tick label: 0.001 -> 1e-3 (log axes: 0.05 -> 5e-2), 2500 -> 2500, 20000 -> 20k, 0.25 -> 0.25. */
export function formatTick(v: number, log = false): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (log && (a < 0.1 || a >= 1e4)) {
    const e = Math.floor(Math.log10(a) + 1e-9);
    const m = Math.round((v / 10 ** e) * 100) / 100;
    return `${m}e${e}`;
  }
  if (a >= 1e4 && a % 1000 === 0) return `${a / 1000}k`.replace(/^/, v < 0 ? '-' : '');
  if (a >= 1) return String(Math.round(v * 1000) / 1000);
  if (a >= 0.01) return String(Math.round(v * 1e4) / 1e4);
  const e = Math.floor(Math.log10(a) + 1e-9);
  return `${Math.round((v / 10 ** e) * 100) / 100}e${e}`;
}

const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const AXIS: Rgb = [90, 90, 90];

/** Where a chart's plot area lies and how data values map to pixels. */
interface ChartFrame {
  left: number;
  top: number;
  right: number;
  bottom: number;
  X: (v: number) => number;
  Y: (v: number) => number;
  yTicks: { major: number[]; minor: number[] };
  yLabels: string[];
  xmin: number;
  xmax: number;
  /** No finite point to draw. */
  empty: boolean;
}

const FONT_SCALE = 2;
const LINE_H = GLYPH_H * FONT_SCALE;

/** Draws one chart into the rectangle (x, y, w, h) of `cv`. */
export function drawChart(cv: Canvas, spec: ChartSpec, x: number, y: number, w: number, h: number): void {
  const f = chartFrame(spec, x, y, w, h);
  cv.text(spec.title, x + Math.round((w - textWidth(spec.title, FONT_SCALE)) / 2), y + 10, INK, FONT_SCALE);
  drawAxes(cv, spec, f, x, y, h);
  const points = drawSeries(cv, spec, f);
  if (f.empty) {
    const msg = 'no data yet';
    cv.text(msg, f.left + Math.round((f.right - f.left - textWidth(msg, FONT_SCALE)) / 2), f.top + Math.round((f.bottom - f.top) / 2), AXIS, FONT_SCALE);
  }
  drawLegend(cv, spec, f, points);
}

/** The finite data's extent (positive y only on a log axis), padded; a unit box when there is none. */
function dataRange(spec: ChartSpec): { xmin: number; xmax: number; ymin: number; ymax: number; empty: boolean } {
  let xmin = Infinity;
  let xmax = -Infinity;
  let ymin = Infinity;
  let ymax = -Infinity;
  for (const s of spec.series) {
    for (let i = 0; i < Math.min(s.x.length, s.y.length); i++) {
      const xv = s.x[i];
      const yv = s.y[i];
      if (!Number.isFinite(xv) || !Number.isFinite(yv) || (spec.logY && !(yv > 0))) continue;
      xmin = Math.min(xmin, xv);
      xmax = Math.max(xmax, xv);
      ymin = Math.min(ymin, yv);
      ymax = Math.max(ymax, yv);
    }
  }
  const empty = !Number.isFinite(xmin);
  if (empty) [xmin, xmax, ymin, ymax] = [0, 1, spec.logY ? 0.1 : 0, 1];
  if (xmax === xmin) xmax = xmin + 1;
  if (spec.logY) {
    if (ymax / ymin < 1.5) {
      ymin /= 1.25;
      ymax *= 1.25;
    }
  } else {
    const pad = (ymax - ymin) * 0.05 || Math.abs(ymax) * 0.1 || 1;
    ymin -= pad;
    ymax += pad;
  }
  return { xmin, xmax, ymin, ymax, empty };
}

/** Ticks and the plot area (room for the tick labels at the left, the title above, the x label below). */
function chartFrame(spec: ChartSpec, x: number, y: number, w: number, h: number): ChartFrame {
  const { xmin, xmax, ymin, ymax, empty } = dataRange(spec);
  const yTicks = spec.logY ? logTicks(ymin, ymax) : { major: niceTicks(ymin, ymax), minor: [] as number[] };
  // a narrow log range: label linear-looking nice values instead
  if (spec.logY && yTicks.major.length < 2) yTicks.major = niceTicks(ymin, ymax, 4).filter((v) => v > 0);
  const yLabels = yTicks.major.map((v) => formatTick(v, spec.logY));
  const left = x + 20 + LINE_H + Math.max(...yLabels.map((s) => textWidth(s, FONT_SCALE)), 0) + 8;
  const top = y + 12 + LINE_H + 10;
  const right = x + w - 16;
  const bottom = y + h - (12 + LINE_H + 8 + LINE_H + 6);
  const ly0 = spec.logY ? Math.log10(ymin) : ymin;
  const ly1 = spec.logY ? Math.log10(ymax) : ymax;
  const X = (v: number) => left + ((v - xmin) / (xmax - xmin)) * (right - left);
  const Y = (v: number) => bottom - (((spec.logY ? Math.log10(v) : v) - ly0) / (ly1 - ly0)) * (bottom - top);
  return { left, top, right, bottom, X, Y, yTicks, yLabels, xmin, xmax, empty };
}

/** Grid lines, ticks, tick labels, the axes box and the axis labels. */
function drawAxes(cv: Canvas, spec: ChartSpec, f: ChartFrame, x: number, y: number, h: number): void {
  const { left, top, right, bottom } = f;
  const pw = right - left;
  for (const v of f.yTicks.minor) {
    const py = Math.round(f.Y(v));
    cv.hline(left, right, py, GRID, 0.5);
    cv.hline(left - 3, left, py, AXIS);
  }
  f.yTicks.major.forEach((v, i) => {
    const py = Math.round(f.Y(v));
    if (py < top - 1 || py > bottom + 1) return;
    cv.hline(left, right, py, GRID);
    cv.hline(left - 6, left, py, AXIS);
    const s = f.yLabels[i];
    cv.text(s, left - 9 - textWidth(s, FONT_SCALE), py - Math.floor(3.5 * FONT_SCALE), INK, FONT_SCALE);
  });
  for (const v of niceTicks(f.xmin, f.xmax, Math.max(2, Math.floor(pw / 110)))) {
    const px = Math.round(f.X(v));
    if (px < left - 1 || px > right + 1) continue;
    cv.vline(px, top, bottom, GRID);
    cv.vline(px, bottom, bottom + 6, AXIS);
    const s = formatTick(v);
    cv.text(s, px - Math.floor(textWidth(s, FONT_SCALE) / 2), bottom + 10, INK, FONT_SCALE);
  }
  cv.hline(left, right, bottom, AXIS);
  cv.hline(left, right, top, AXIS);
  cv.vline(left, top, bottom, AXIS);
  cv.vline(right, top, bottom, AXIS);
  if (spec.xLabel) cv.text(spec.xLabel, left + Math.round((pw - textWidth(spec.xLabel, FONT_SCALE)) / 2), y + h - LINE_H - 6, INK, FONT_SCALE);
  if (spec.yLabel) cv.text(spec.yLabel, x + 8, top + Math.round((bottom - top + textWidth(spec.yLabel, FONT_SCALE)) / 2), INK, FONT_SCALE, true);
}

/** Every series' line (and markers) clipped to the plot area; returns all points in pixels. */
function drawSeries(cv: Canvas, spec: ChartSpec, f: ChartFrame): [number, number][] {
  const clip = { x0: f.left + 1, y0: f.top + 1, x1: f.right - 1, y1: f.bottom - 1 };
  const allPts: [number, number][] = [];
  spec.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const pts: [number, number][] = [];
    for (let k = 0; k < Math.min(s.x.length, s.y.length); k++) {
      const yv = s.y[k];
      const ok = Number.isFinite(yv) && (!spec.logY || yv > 0);
      pts.push(ok ? [f.X(s.x[k]), f.Y(yv)] : [NaN, NaN]);
    }
    allPts.push(...pts);
    drawPolyline(cv, pts, color, s.width ?? 2, clip);
    if (!s.markers) return;
    for (const [px, py] of pts) {
      if (Number.isFinite(px)) drawPolyline(cv, [[px, py]], color, 6, clip);
    }
  });
  return allPts;
}

/** The named series' legend, in the corner of the plot that hides the fewest points. */
function drawLegend(cv: Canvas, spec: ChartSpec, f: ChartFrame, points: [number, number][]): void {
  const named = spec.series.map((s, i) => ({ s, i })).filter(({ s }) => s.label);
  if (!named.length) return;
  const lw = Math.max(...named.map(({ s }) => textWidth(s.label, FONT_SCALE))) + 34;
  const lh = named.length * (LINE_H + 6) + 8;
  const corners: [number, number][] = [
    [f.right - lw - 8, f.top + 8],
    [f.right - lw - 8, f.bottom - lh - 8],
    [f.left + 8, f.top + 8],
    [f.left + 8, f.bottom - lh - 8],
  ];
  const hidden = ([cx, cy]: [number, number]) => points.filter(([px, py]) => px >= cx - 4 && px <= cx + lw + 4 && py >= cy - 4 && py <= cy + lh + 4).length;
  const [lx, ly] = corners.reduce((best, c) => (hidden(c) < hidden(best) ? c : best));
  cv.fillRect(lx, ly, lw, lh, [255, 255, 255], 0.85);
  cv.hline(lx, lx + lw - 1, ly, GRID);
  cv.hline(lx, lx + lw - 1, ly + lh - 1, GRID);
  cv.vline(lx, ly, ly + lh - 1, GRID);
  cv.vline(lx + lw - 1, ly, ly + lh - 1, GRID);
  named.forEach(({ s, i }, row) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const cy = ly + 6 + row * (LINE_H + 6);
    cv.fillRect(lx + 6, cy + Math.floor(LINE_H / 2) - 1, 18, 3, color);
    cv.text(s.label, lx + 28, cy, INK, FONT_SCALE);
  });
}

/** Charts side by side (`columns` per row) in one image. */
export function renderCharts(specs: ChartSpec[], opts: ChartOptions & { columns?: number } = {}): Canvas {
  const cols = Math.max(1, Math.min(opts.columns ?? specs.length, specs.length));
  const rows = Math.ceil(specs.length / cols);
  const w = opts.width ?? 900;
  const h = opts.height ?? 560;
  const cv = new Canvas(w * cols, h * rows);
  specs.forEach((s, i) => drawChart(cv, s, (i % cols) * w, Math.floor(i / cols) * h, w, h));
  return cv;
}

/** Writes charts to a PNG atomically (temporary file, then rename). */
export function writeCharts(path: string, specs: ChartSpec[], opts: ChartOptions & { columns?: number } = {}): void {
  const png = renderCharts(specs, opts).png();
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, png);
}

/** A moving average over `window` points (for noisy curves). */
export function smooth(y: readonly number[], window: number): number[] {
  if (window <= 1) return [...y];
  const out: number[] = [];
  let sum = 0;
  let n = 0;
  const q: number[] = [];
  for (const v of y) {
    if (!Number.isFinite(v)) {
      out.push(v);
      continue;
    }
    q.push(v);
    sum += v;
    n++;
    if (q.length > window) {
      sum -= q.shift()!;
      n--;
    }
    out.push(sum / n);
  }
  return out;
}
