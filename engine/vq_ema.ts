// The EMA codebook of SPEC section 3 (van den Oord et al. 2017, appendix A.1, with Sonnet's
// debiasing and Laplace smoothing), dead-code restarts from current encoder outputs, and
// k-means++ (+ optional Lloyd steps) codebook initialisation. Kernels: shaders/vq.wgsl.
import { Rng } from './random.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { dispatchFill } from './fill.js';
import { type Tensor, assertDType, empty, keep } from './tensor.js';
import { type VqSchedule, codeCounts, nearestCode, segmentSum, vecSpec } from './vq.js';

/**
 * restart: restart dead codes. The divisor 1 - decay^t (1 without debiasing) changes every step,
 * so it is not here but in a buffer written once per step (Runtime.writePerStep), as are the
 * restart rows: a recorded step (engine/recording.ts) replays with new ones.
 */
const EMA_COUNTS_PARAMS = paramBlock({ k: 'u32', restart: 'u32', decay: 'f32', eps: 'f32', threshold: 'f32' });
/** dv: vectors per row. */
const EMA_UPDATE_PARAMS = paramBlock({ k: 'u32', dv: 'u32', decay: 'f32' });
/** code: the centre being placed; first: 1 for the first (no distances yet); u: the uniform draw. */
const KPP_PICK_PARAMS = paramBlock({ n: 'u32', d: 'u32', code: 'u32', first: 'u32', u: 'f32' });
const KPP_DIST_PARAMS = paramBlock({ n: 'u32', d: 'u32', code: 'u32', first: 'u32' });
const KMEANS_UPDATE_PARAMS = paramBlock({ k: 'u32', d: 'u32' });

/**
 * `k` row indices in [0, n) without repeats while k <= n (a partial Fisher-Yates shuffle;
 * beyond n the draw starts over). The restart rows of EmaCodebook come from here.
 */
export function sampleRows(rng: Rng, n: number, k: number): Uint32Array {
  const out = new Uint32Array(k);
  const moved = new Map<number, number>();
  for (let i = 0; i < k; i++) {
    const m = i % n;
    if (m === 0) moved.clear();
    const j = m + rng.int(n - m);
    const vj = moved.get(j) ?? j;
    moved.set(j, moved.get(m) ?? m);
    out[i] = vj;
  }
  return out;
}

export interface EmaOptions {
  /** Decay g of the moving averages (default 0.99). */
  decay?: number;
  /** Laplace smoothing of the counts (default 1e-5). */
  eps?: number;
  /**
   * Sonnet's debiasing: the averages start at 0 and are divided by 1 - g^t (default true).
   * false: start at N = 1, m = the codebook, with no debiasing (the SPEC's other remedy).
   */
  debias?: boolean;
  /**
   * Restart codes whose (debiased) EMA count falls below this after an update from random
   * rows of the current batch, with their count reset to 1 (default 0: off).
   */
  restartThreshold?: number;
  /** Generator of the restart rows (default: a new Rng(0)). */
  rng?: Rng;
}

/**
 * An EMA-trained codebook. Per step, after quantising with the current codebook:
 *   N <- g N + (1 - g) n,  m <- g m + (1 - g) s,  e = m^ / smooth(N^)
 * with n, s the batch's per-code counts and sums (segmentSum: deterministic, no float
 * atomics, and as fast with one code holding every row), ^ the debiased values and smooth the Laplace smoothing. Updates the
 * codebook tensor's buffer in place; it must not require grad (no gradient reaches it).
 */
export class EmaCodebook {
  readonly k: number;
  readonly d: number;
  readonly decay: number;
  readonly eps: number;
  readonly debias: boolean;
  readonly restartThreshold: number;
  readonly rng: Rng;
  /** Updates done (t). */
  step = 0;
  /** [K]: raw moving average of the counts (N^ = emaCount / (1 - g^t) when debiasing). */
  readonly emaCount: Tensor;
  /** [K, D]: raw moving average of the per-code sums. */
  readonly emaSum: Tensor;
  /** [1]: this step's 1 - decay^t (1 without debiasing). */
  private readonly stepBias: Tensor;
  /** u32 [K]: this step's restart rows (zeros when restarts are off). */
  private readonly restartRows: Tensor;

  constructor(
    readonly codebook: Tensor,
    opts: EmaOptions = {},
  ) {
    assertDType('EmaCodebook', 'f32', codebook);
    if (codebook.rank !== 2) throw new Error(`EmaCodebook: the codebook must be [K, D], got ${codebook.describe()}`);
    if (codebook.requiresGrad) {
      throw new Error(`EmaCodebook: ${codebook.describe()} requires grad, but an EMA codebook takes no gradient (SPEC section 3)`);
    }
    [this.k, this.d] = codebook.shape;
    this.decay = opts.decay ?? 0.99;
    this.eps = opts.eps ?? 1e-5;
    this.debias = opts.debias ?? true;
    this.restartThreshold = opts.restartThreshold ?? 0;
    this.rng = opts.rng ?? new Rng(0);
    if (!(this.decay > 0 && this.decay < 1)) throw new Error(`EmaCodebook: decay must be in (0, 1), got ${this.decay}`);
    if (!(this.eps >= 0)) throw new Error(`EmaCodebook: eps must be >= 0, got ${this.eps}`);
    this.emaCount = keep(empty([this.k]));
    this.emaSum = keep(empty([this.k, this.d]));
    this.stepBias = keep(empty([1]));
    this.restartRows = keep(empty([this.k], 'u32'));
    dispatchFill(this.restartRows, 0);
    this.resetState();
  }

  /** Restarts the averages from the current codebook (e.g. after kmeansInit into it). */
  resetState(): void {
    this.step = 0;
    if (this.debias) {
      dispatchFill(this.emaCount, 0);
      dispatchFill(this.emaSum, 0);
    } else {
      dispatchFill(this.emaCount, 1);
      rt().copy(this.codebook.buffer, 0, this.emaSum.buffer, 0, this.k * this.d * 4);
    }
  }

  /**
   * One EMA step from a batch z [N, D] and its codes (quantised with the codebook as it was
   * before this call). Returns a u32 [] tensor: the number of codes restarted (0 without
   * restarts).
   */
  update(z: Tensor, indices: Tensor): Tensor {
    assertDType('EmaCodebook.update', 'f32', z);
    assertDType('EmaCodebook.update', 'u32', indices);
    if (z.rank !== 2 || z.shape[1] !== this.d || indices.rank !== 1 || indices.size !== z.shape[0]) {
      throw new Error(
        `EmaCodebook.update: expected z [N, ${this.d}] and indices [N], got z [${z.shape.join(', ')}] and indices [${indices.shape.join(', ')}]`,
      );
    }
    const n = z.shape[0];
    if (n === 0) throw new Error('EmaCodebook.update: empty batch');
    const { k, d } = this;
    const r = rt();
    const restart = this.restartThreshold > 0;
    r.writePerStep(this.stepBias.buffer, () => {
      this.step++;
      return Float32Array.of(this.debias ? 1 - this.decay ** this.step : 1);
    });
    // Drawn every step, used only by dead codes: the generator advances the same way whatever
    // the GPU decides, so runs repeat.
    if (restart) r.writePerStep(this.restartRows.buffer, () => sampleRows(this.rng, n, k));
    const counts = codeCounts(indices, k);
    const sums = segmentSum(z, indices, k);
    const smooth = empty([k]);
    const dead = empty([k], 'u32');
    const ndead = empty([], 'u32');
    r.dispatch(
      shaderKernel('vq', 'ema_counts', {}, EMA_COUNTS_PARAMS),
      [counts.buffer, this.emaCount.buffer, smooth.buffer, dead.buffer, ndead.buffer, this.stepBias.buffer],
      EMA_COUNTS_PARAMS.pack({ k, restart, decay: this.decay, eps: this.eps, threshold: this.restartThreshold }),
      [1],
    );
    const v = vecSpec(d);
    r.dispatch(
      shaderKernel('vq', 'ema_update', v.values, EMA_UPDATE_PARAMS),
      [z.buffer, sums.buffer, smooth.buffer, dead.buffer, this.restartRows.buffer, this.emaSum.buffer, this.codebook.buffer, this.stepBias.buffer],
      EMA_UPDATE_PARAMS.pack({ k, dv: v.dv, decay: this.decay }),
      grid1d(Math.ceil((k * v.dv) / 64)),
    );
    for (const x of [smooth, dead, counts, sums]) x.dispose();
    return ndead;
  }

  dispose(): void {
    this.emaCount.dispose();
    this.emaSum.dispose();
    this.stepBias.dispose();
    this.restartRows.dispose();
  }
}

export interface KmeansInitOptions {
  /** Lloyd iterations after the k-means++ seeding (default 0). */
  iters?: number;
  /** Generator of the seeding draws (default: a new Rng(0)). */
  rng?: Rng;
  /** Write the centres into this [K, D] tensor (in place) instead of a new one. */
  into?: Tensor;
  /** Nearest-code schedule for the Lloyd steps. */
  schedule?: VqSchedule;
}

/**
 * A [K, D] codebook from the rows of z [N, D] (e.g. the first batch of encoder outputs):
 * k-means++ seeding (each centre drawn with probability proportional to the squared distance
 * to the nearest centre so far; the first uniformly), then `iters` Lloyd steps. All on the GPU;
 * one draw of the generator per centre.
 */
export function kmeansInit(z: Tensor, k: number, opts: KmeansInitOptions = {}): Tensor {
  assertDType('kmeansInit', 'f32', z);
  if (z.rank !== 2 || z.shape[0] === 0) throw new Error(`kmeansInit: z must be a non-empty [N, D], got ${z.describe()}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`kmeansInit: the number of codes must be a positive integer, got ${k}`);
  const [n, d] = z.shape;
  const out = opts.into ?? empty([k, d]);
  if (opts.into) {
    assertDType('kmeansInit', 'f32', opts.into);
    if (opts.into.shape.join() !== `${k},${d}`) throw new Error(`kmeansInit: into must be [${k}, ${d}], got ${opts.into.describe()}`);
  }
  const rng = opts.rng ?? new Rng(0);
  const r = rt();
  const dmin = empty([n]);
  const pick = shaderKernel('vq', 'kpp_pick', {}, KPP_PICK_PARAMS);
  const dist = shaderKernel('vq', 'kpp_dist', {}, KPP_DIST_PARAMS);
  for (let c = 0; c < k; c++) {
    const first = c === 0;
    r.dispatch(pick, [z.buffer, dmin.buffer, out.buffer], KPP_PICK_PARAMS.pack({ n, d, code: c, first, u: rng.next() }), [1]);
    if (c + 1 < k) r.dispatch(dist, [z.buffer, out.buffer, dmin.buffer], KPP_DIST_PARAMS.pack({ n, d, code: c, first }), grid1d(Math.ceil(n / 64)));
  }
  dmin.dispose();
  for (let it = 0; it < (opts.iters ?? 0); it++) {
    const { indices } = nearestCode(z, out, { schedule: opts.schedule });
    const counts = codeCounts(indices, k);
    const sums = segmentSum(z, indices, k);
    indices.dispose();
    r.dispatch(shaderKernel('vq', 'kmeans_update', {}, KMEANS_UPDATE_PARAMS), [sums.buffer, counts.buffer, out.buffer], KMEANS_UPDATE_PARAMS.pack({ k, d }), grid1d(Math.ceil((k * d) / 64)));
    counts.dispose();
    sums.dispose();
  }
  return out;
}
