// Ancestral sampling of code maps from the PixelCNN prior, in raster order, batched over
// samples: one forward pass of the whole map per position (the prior is causal, so the
// logits at position p only use codes already drawn), then a categorical draw at p for every
// sample at once on the GPU (engine/sample.ts: softmax with temperature, inverse CDF against
// a uniform), written straight into the code map on the GPU, which the next position's forward
// pass reads: no read-back per position. The uniforms come from our seeded Rng on the CPU,
// position-major (for each position, one per sample), uploaded once per map, so a seed gives
// the same maps on every run (the forward pass and the draw are deterministic: no atomics).
// T = 0 takes the argmax (greedy). The codes come back to the CPU once per row of the map
// (for progress) or once at the end.
import { noGrad } from '../engine/autograd.js';
import { Rng } from '../engine/random.js';
import { sampleCategoricalInto } from '../engine/sample.js';
import { tensor, tidy } from '../engine/tensor.js';
import type { PixelCnn } from '../model/pixelcnn.js';

export interface SampleOptions {
  temperature?: number;
  seed?: number;
  /**
   * Called after each row of the map with the rows done and the codes drawn so far (a fresh
   * array each call, rows not drawn yet hold 0). With it, the codes are read back once per row.
   */
  onRow?: (rowsDone: number, rows: number, codes: Uint32Array) => void;
}

/**
 * The uniforms of a draw, from a seeded generator, as f32 in [0, 1) (a double that rounds up
 * to 1 is drawn again).
 */
export function sampleUniforms(rng: Rng, n: number): Float32Array {
  const u = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    do u[i] = rng.next();
    while (u[i] >= 1);
  }
  return u;
}

/** n code maps u32 [n, h, w] (row-major) drawn from `model`. */
export async function sampleCodes(model: PixelCnn, n: number, h: number, w: number, opts: SampleOptions = {}): Promise<Uint32Array> {
  const temperature = opts.temperature ?? 1;
  if (!(temperature >= 0 && Number.isFinite(temperature))) throw new Error(`sample: temperature must be >= 0, got ${temperature}`);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`sample: n must be a positive integer, got ${n}`);
  const K = model.config.numCodes;
  const HW = h * w;
  const rng = new Rng(opts.seed ?? 0);
  // uniforms[p * n + s]: position p, sample s
  const uniforms = tensor(temperature > 0 ? sampleUniforms(rng, HW * n) : new Float32Array(1), [temperature > 0 ? HW * n : 1]);
  const codes = tensor(new Uint32Array(n * HW), [n, h, w], 'u32');
  try {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const p = i * w + j;
        tidy(() =>
          noGrad(() => {
            // logits [n, K, h, w]: element (s, k) at position p is s * K * HW + k * HW + p
            const logits = model.forward(codes);
            sampleCategoricalInto(logits, uniforms, codes, { rows: n, K, rowStride: K * HW, kStride: HW, offset: p, uOffset: p * n, outStride: HW, outOffset: p, temperature });
          }),
        );
      }
      if (opts.onRow) opts.onRow(i + 1, h, (await codes.read()) as Uint32Array);
    }
    return (await codes.read()) as Uint32Array;
  } finally {
    codes.dispose();
    uniforms.dispose();
  }
}
