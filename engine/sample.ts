// Launches shaders/sample.wgsl: a categorical draw per row of logits (softmax with temperature,
// inverse CDF against a given uniform), written straight into a u32 code map on the GPU, so
// autoregressive sampling needs no read-back per position.
import { kernel, paramBlock } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { wgsl } from './shaders.js';
import type { Tensor } from './tensor.js';

/**
 * rows: draws; K: categories; logit (s, k) at s * rowStride + k * kStride + offset; uniform of
 * row s at uOffset + s; code of row s to out[s * outStride + outOffset]; invT: 1 / temperature;
 * greedy: take the first argmax (temperature 0).
 */
const SAMPLE_PARAMS = paramBlock(
  { rows: 'u32', K: 'u32', rowStride: 'u32', kStride: 'u32', offset: 'u32', uOffset: 'u32', outStride: 'u32', outOffset: 'u32', invT: 'f32', greedy: 'u32' },
  5,
);

/** The largest finite f32: 1 / T for a tiny T stays finite, so (max - max) / T is 0, not NaN. */
const F32_MAX = 3.4028234663852886e38;

const sampleKernel = kernel('sample.categorical', {}, () => wgsl('sample', { PARAMS: SAMPLE_PARAMS.wgsl }));

export interface CategoricalDraw {
  /** Draws (rows). */
  rows: number;
  /** Categories per row. */
  K: number;
  /** Layout of the logits: element (s, k) at s * rowStride + k * kStride + offset. */
  rowStride: number;
  kStride: number;
  offset?: number;
  /** Row s uses uniforms[uOffset + s] (f32 in [0, 1]). */
  uOffset?: number;
  /** Row s writes its code to out[s * outStride + outOffset]. */
  outStride: number;
  outOffset?: number;
  /** Softmax temperature; 0 takes the first argmax (the uniforms are not read). */
  temperature: number;
}

/**
 * Records a categorical draw per row of `logits` (f32) into the u32 tensor `out`, in place:
 * code = the smallest k with sum_{j<=k} w_j > u * sum_j w_j, w_j = exp((logit_j - max) / T).
 * Nothing is read back; `out` is written when the recorded work runs.
 */
export function sampleCategoricalInto(logits: Tensor, uniforms: Tensor, out: Tensor, d: CategoricalDraw): void {
  if (logits.dtype !== 'f32' || uniforms.dtype !== 'f32' || out.dtype !== 'u32') {
    throw new Error(`sampleCategoricalInto: needs f32 logits and uniforms and a u32 out, got ${logits.describe()}, ${uniforms.describe()}, ${out.describe()}`);
  }
  const T = d.temperature;
  if (!(T >= 0 && Number.isFinite(T))) throw new Error(`sampleCategoricalInto: temperature must be >= 0, got ${T}`);
  const offset = d.offset ?? 0;
  const uOffset = d.uOffset ?? 0;
  const outOffset = d.outOffset ?? 0;
  if (!(d.rows >= 1 && d.K >= 1)) throw new Error(`sampleCategoricalInto: rows ${d.rows}, K ${d.K}`);
  const lastLogit = (d.rows - 1) * d.rowStride + (d.K - 1) * d.kStride + offset;
  if (lastLogit >= logits.size) throw new Error(`sampleCategoricalInto: logit ${lastLogit} past ${logits.describe()}`);
  if (T > 0 && uOffset + d.rows > uniforms.size) throw new Error(`sampleCategoricalInto: uniforms ${uOffset}..${uOffset + d.rows} past ${uniforms.describe()}`);
  if ((d.rows - 1) * d.outStride + outOffset >= out.size) throw new Error(`sampleCategoricalInto: code past ${out.describe()}`);
  const params = SAMPLE_PARAMS.pack({
    rows: d.rows,
    K: d.K,
    rowStride: d.rowStride,
    kStride: d.kStride,
    offset,
    uOffset,
    outStride: d.outStride,
    outOffset,
    invT: T > 0 ? Math.min(1 / T, F32_MAX) : 0,
    greedy: T === 0,
  });
  rt().dispatch(sampleKernel, [logits.buffer, uniforms.buffer, out.buffer], params, grid1d(Math.ceil(d.rows / 64)));
}

/**
 * The same draw on the CPU in float64 (the reference): logits row-major [rows, K], one uniform
 * per row.
 */
export function sampleCategoricalCpu(logits: ArrayLike<number>, uniforms: ArrayLike<number>, rows: number, K: number, temperature: number): Uint32Array {
  const out = new Uint32Array(rows);
  for (let s = 0; s < rows; s++) {
    let m = logits[s * K];
    let best = 0;
    for (let k = 1; k < K; k++) if (logits[s * K + k] > m) [m, best] = [logits[s * K + k], k];
    if (temperature === 0) {
      out[s] = best;
      continue;
    }
    const w = Array.from({ length: K }, (_, k) => Math.exp((logits[s * K + k] - m) / temperature));
    const total = w.reduce((a, b) => a + b, 0);
    const target = uniforms[s] * total;
    let acc = 0;
    let code = -1;
    let last = best;
    for (let k = 0; k < K; k++) {
      acc += w[k];
      if (w[k] > 0) last = k;
      if (code < 0 && acc > target) code = k;
    }
    out[s] = code < 0 ? last : code;
  }
  return out;
}
