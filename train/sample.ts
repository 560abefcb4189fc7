// Ancestral sampling of code maps from the PixelCNN prior, in raster order, batched over
// samples: one forward pass of the whole map per position (the prior is causal, so the
// logits at position p only use codes already drawn), then a categorical draw at p for every
// sample at once on the GPU with the Gumbel-max trick:
//   code = argmax_k (logits_k / T + g_k),  g_k = -log(-log u_k),  u_k uniform from our seeded Rng
// which draws code k with probability softmax(logits / T)_k. The uniforms are made on the CPU
// from the seeded generator and uploaded, so a seed gives the same maps on every run (the
// forward pass and argmax are deterministic: no atomics). T = 0 takes the argmax (greedy).
// Only the n drawn codes per position come back to the CPU.
import { noGrad } from '../engine/autograd.js';
import { add, scale } from '../engine/elementwise.js';
import { Rng } from '../engine/random.js';
import { argmax } from '../engine/reduce.js';
import { reshape, slice } from '../engine/shape.js';
import { tensor, tidy } from '../engine/tensor.js';
import type { PixelCnn } from '../model/pixelcnn.js';

export interface SampleOptions {
  temperature?: number;
  seed?: number;
  /** Called after each position with the number done and the codes drawn so far (not a copy). */
  onPosition?: (done: number, total: number, codes: Uint32Array) => void;
}

/** Gumbel(0, 1) noise from a seeded generator (u in (0, 1), never exactly 0). */
export function gumbelNoise(rng: Rng, n: number): Float32Array {
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let u = rng.next();
    while (u === 0) u = rng.next();
    g[i] = -Math.log(-Math.log(u));
  }
  return g;
}

/** n code maps u32 [n, h, w] (row-major) drawn from `model`. */
export async function sampleCodes(model: PixelCnn, n: number, h: number, w: number, opts: SampleOptions = {}): Promise<Uint32Array> {
  const temperature = opts.temperature ?? 1;
  if (!(temperature >= 0 && Number.isFinite(temperature))) throw new Error(`sample: temperature must be >= 0, got ${temperature}`);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`sample: n must be a positive integer, got ${n}`);
  const K = model.config.numCodes;
  const rng = new Rng(opts.seed ?? 0);
  const codes = new Uint32Array(n * h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const noise = temperature > 0 ? gumbelNoise(rng, n * K) : null;
      const drawn = tidy(() =>
        noGrad(() => {
          const logits = model.forward(tensor(codes, [n, h, w], 'u32'));
          const at = reshape(slice(logits, [0, 0, i, j], [n, K, i + 1, j + 1]), [n, K]);
          const z = noise ? add(scale(at, 1 / temperature), tensor(noise, [n, K])) : at;
          return argmax(z, 1);
        }),
      );
      const v = (await drawn.read()) as Uint32Array;
      drawn.dispose();
      for (let s = 0; s < n; s++) codes[(s * h + i) * w + j] = v[s];
      opts.onPosition?.(i * w + j + 1, h * w, codes);
    }
  }
  return codes;
}
