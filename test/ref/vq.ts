// Float64 CPU references for the vector quantiser (engine/vq.ts, engine/vq_ema.ts), written
// straight from SPEC sections 1-4 with no shortcuts shared with the GPU code.

type Arr = ArrayLike<number>;

/** Squared L2 distance of row i of z to row j of e, in float64. */
export function sqdist(z: Arr, e: Arr, d: number, i: number, j: number): number {
  let s = 0;
  for (let c = 0; c < d; c++) {
    const v = z[i * d + c] - e[j * d + c];
    s += v * v;
  }
  return s;
}

/** argmin_j ||z_i - e_j||^2 in float64, the lowest j on exact ties, and the minimum. */
export function refNearest(z: Arr, e: Arr, n: number, k: number, d: number): { idx: Uint32Array; dist: Float64Array } {
  const z64 = Float64Array.from(z); // one array type keeps the loops below fast in V8
  const e64 = Float64Array.from(e);
  const idx = new Uint32Array(n);
  const dist = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let bi = 0;
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) {
        const v = z64[i * d + c] - e64[j * d + c];
        s += v * v;
      }
      if (s < best) {
        best = s;
        bi = j;
      }
    }
    idx[i] = bi;
    dist[i] = best;
  }
  return { idx, dist };
}

/**
 * Checks GPU indices against float64: each chosen code must be within `rtol` (relative to
 * ||z||^2 + max ||e||^2, the scale of f32 rounding in ||e||^2 - 2 z.e) of the true minimum,
 * and no lower-index code may have exactly the same distance (exact ties go to the lowest
 * index). Returns failure strings (at most 5) and how many rows differ from the float64 argmin.
 */
export function checkNearest(
  z: Arr,
  e: Arr,
  n: number,
  k: number,
  d: number,
  got: Arr,
  rtol = 1e-5,
): { failures: string[]; differ: number } {
  const failures: string[] = [];
  const ref = refNearest(z, e, n, k, d);
  const zero = new Float64Array(d);
  let differ = 0;
  let maxNorm = 0;
  for (let j = 0; j < k; j++) maxNorm = Math.max(maxNorm, sqdist(e, zero, d, j, 0));
  for (let i = 0; i < n && failures.length < 5; i++) {
    const g = got[i];
    if (!(g < k)) {
      failures.push(`row ${i}: index ${g} out of range`);
      continue;
    }
    if (g === ref.idx[i]) continue; // the float64 argmin, lowest index first
    differ++;
    const dg = sqdist(z, e, d, i, g);
    const tol = rtol * (sqdist(z, zero, d, i, 0) + maxNorm) + 1e-30;
    if (dg > ref.dist[i] + tol) failures.push(`row ${i}: code ${g} at ${dg}, nearest ${ref.idx[i]} at ${ref.dist[i]}`);
    for (let j = 0; j < g; j++) {
      if (sqdist(z, e, d, i, j) === dg) {
        failures.push(`row ${i}: code ${g} chosen over the lower code ${j} at exactly the same distance`);
        break;
      }
    }
  }
  return { failures, differ };
}

/** The VQ losses and their gradients (SPEC section 2), for a scalar output gradient g. */
export function refVqLoss(
  z: Arr,
  e: Arr,
  idx: Arr,
  n: number,
  k: number,
  d: number,
  beta: number,
  g = 1,
): { m: number; codebookLoss: number; commitmentLoss: number; zq: Float64Array; dCodebook: Float64Array; dzCommit: Float64Array } {
  const zq = new Float64Array(n * d);
  let s = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < d; c++) {
      zq[i * d + c] = e[idx[i] * d + c];
      const v = zq[i * d + c] - z[i * d + c];
      s += v * v;
    }
  }
  const m = s / (n * d);
  // d/dE_k of mean((E_idx - sg z)^2) and d/dz of beta * mean((sg E_idx - z)^2)
  const dCodebook = new Float64Array(k * d);
  const dzCommit = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < d; c++) {
      const diff = e[idx[i] * d + c] - z[i * d + c];
      dCodebook[idx[i] * d + c] += (g * 2 * diff) / (n * d);
      dzCommit[i * d + c] = (g * 2 * beta * -diff) / (n * d);
    }
  }
  return { m, codebookLoss: m, commitmentLoss: beta * m, zq, dCodebook, dzCommit };
}

/** Perplexity exp(-sum p ln(p + 1e-10)) and number of used codes from per-code counts. */
export function refStats(counts: Arr): { perplexity: number; used: number } {
  let total = 0;
  let used = 0;
  for (let j = 0; j < counts.length; j++) {
    total += counts[j];
    if (counts[j] > 0) used++;
  }
  let h = 0;
  for (let j = 0; j < counts.length; j++) {
    const p = total > 0 ? counts[j] / total : 0;
    h -= p * Math.log(p + 1e-10);
  }
  return { perplexity: Math.exp(h), used };
}

/** Float64 EMA codebook (SPEC section 3) with Sonnet's debiasing, Laplace smoothing, restarts. */
export class RefEma {
  N: Float64Array;
  m: Float64Array;
  e: Float64Array;
  t = 0;
  restarted = 0;

  constructor(
    e0: Arr,
    readonly k: number,
    readonly d: number,
    readonly opts: { decay: number; eps: number; debias: boolean; threshold: number },
  ) {
    this.e = Float64Array.from(e0);
    this.N = new Float64Array(k).fill(opts.debias ? 0 : 1);
    this.m = opts.debias ? new Float64Array(k * d) : Float64Array.from(e0);
  }

  /** One step; `rows[k]` is the batch row a dead code k restarts from. */
  update(z: Arr, idx: Arr, rows: Arr): void {
    const { k, d } = this;
    const { decay: g, eps, debias, threshold } = this.opts;
    this.t++;
    const bias = debias ? 1 - g ** this.t : 1;
    const n = new Float64Array(k);
    const s = new Float64Array(k * d);
    for (let i = 0; i < idx.length; i++) {
      n[idx[i]]++;
      for (let c = 0; c < d; c++) s[idx[i] * d + c] += z[i * d + c];
    }
    let total = 0;
    for (let j = 0; j < k; j++) {
      this.N[j] = g * this.N[j] + (1 - g) * n[j];
      total += this.N[j] / bias;
    }
    this.restarted = 0;
    for (let j = 0; j < k; j++) {
      const nh = this.N[j] / bias;
      const smooth = ((nh + eps) / (total + k * eps)) * total;
      const dead = threshold > 0 && nh < threshold;
      if (dead) {
        this.restarted++;
        this.N[j] = bias;
      }
      for (let c = 0; c < d; c++) {
        const q = j * d + c;
        if (dead) {
          this.e[q] = z[rows[j] * d + c];
          this.m[q] = bias * this.e[q];
        } else {
          this.m[q] = g * this.m[q] + (1 - g) * s[q];
          this.e[q] = this.m[q] / bias / smooth;
        }
      }
    }
  }
}

/**
 * k-means++ seeding in float64 with the given uniform draws u[0..k) (one per centre): row
 * i is drawn with probability w_i / sum w by the inverse CDF (the first row whose running sum
 * exceeds u * sum w); w = 1 for the first centre, else the squared distance to the nearest
 * centre so far; if all weights are 0, row floor(u n). Returns the chosen rows.
 */
export function refKmeansPP(z: Arr, n: number, d: number, k: number, u: Arr): Uint32Array {
  const rows = new Uint32Array(k);
  const w = new Float64Array(n).fill(1);
  for (let c = 0; c < k; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) total += w[i];
    let row = Math.min(Math.floor(u[c] * n), n - 1);
    if (total > 0) {
      const target = u[c] * total;
      let cum = 0;
      for (let i = 0; i < n; i++) {
        cum += w[i];
        if (cum > target && w[i] > 0) {
          row = i;
          break;
        }
      }
    }
    rows[c] = row;
    for (let i = 0; i < n; i++) {
      const dd = sqdist(z, z, d, i, row);
      w[i] = c === 0 ? dd : Math.min(w[i], dd);
    }
  }
  return rows;
}

/** One Lloyd step in float64: each code with rows moves to their mean. */
export function refLloyd(z: Arr, e: Float64Array, n: number, k: number, d: number): void {
  const { idx } = refNearest(z, e, n, k, d);
  const cnt = new Float64Array(k);
  const s = new Float64Array(k * d);
  for (let i = 0; i < n; i++) {
    cnt[idx[i]]++;
    for (let c = 0; c < d; c++) s[idx[i] * d + c] += z[i * d + c];
  }
  for (let j = 0; j < k; j++) if (cnt[j] > 0) for (let c = 0; c < d; c++) e[j * d + c] = s[j * d + c] / cnt[j];
}
