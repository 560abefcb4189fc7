// Evaluation over a split: reconstruction MSE and PSNR, the loss terms, perplexity and
// codebook usage, with no gradient and no codebook update. The per-batch scalars and code
// counts stay on the GPU until the pass ends (one read-back for the scalars).
import { noGrad } from '../engine/autograd.js';
import { type Tensor, keep, tensor, tidy } from '../engine/tensor.js';
import type { VqVae } from '../model/vqvae.js';
import { type Dataset, DataLoader, IMAGE_SIZE, type SplitName, writeImageGrid } from './data/index.js';
import { psnr } from './metrics.js';
import { ScalarLog } from './scalars.js';

export interface EvalResult {
  split: SplitName;
  images: number;
  /** Mean squared reconstruction error per value, data in [-0.5, 0.5]. */
  recon_mse: number;
  /** 10 log10(1 / recon_mse) (data range 1). */
  psnr: number;
  loss: number;
  codebook_loss: number;
  commitment_loss: number;
  /** Perplexity of the code histogram of the whole pass. */
  perplexity: number;
  /** Mean per-batch perplexity (at `batch_size`; comparable with training's). */
  batch_perplexity: number;
  /** Distinct codes used over the pass, and as a fraction of K. */
  codebook_usage: number;
  codebook_usage_fraction: number;
  codebook_size: number;
  batch_size: number;
  seconds: number;
}

/** Perplexity and number of used codes of a histogram. */
export function histogramStats(counts: ArrayLike<number>): { perplexity: number; used: number } {
  let total = 0;
  let used = 0;
  for (let i = 0; i < counts.length; i++) {
    total += counts[i];
    if (counts[i] > 0) used++;
  }
  if (total === 0) return { perplexity: 1, used: 0 };
  let h = 0;
  for (let i = 0; i < counts.length; i++) {
    const p = counts[i] / total;
    h -= p * Math.log(p + 1e-10);
  }
  return { perplexity: Math.exp(h), used };
}

export interface EvaluateOptions {
  batchSize?: number;
  /** Evaluate only the first `limit` images of the split (0 or undefined: all). */
  limit?: number;
  /** Write originals and reconstructions of the first images here (PNG). */
  gridPath?: string;
  gridImages?: number;
  signal?: AbortSignal;
}

/** A dataset whose `split` is cut to its first `limit` images. */
export function limitSplit(ds: Dataset, split: SplitName, limit: number | undefined): Dataset {
  if (!limit || limit >= ds.splits[split].length) return ds;
  return { ...ds, splits: { ...ds.splits, [split]: ds.splits[split].subarray(0, limit) } };
}

const FIELDS = ['loss', 'recon', 'codebook', 'commitment', 'perplexity'] as const;

/**
 * Evaluates `model` on a split (or its first `limit` images). `source` is a dataset (a loader
 * is made and closed here) or a loader to reuse (its dataset's split is taken whole).
 */
export async function evaluate(model: VqVae, source: Dataset | DataLoader, split: SplitName, opts: EvaluateOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const own = !(source instanceof DataLoader);
  const bs = opts.batchSize ?? (own ? 64 : source.batchSize);
  const loader = own ? new DataLoader(limitSplit(source, split, opts.limit), { batchSize: bs, prefetch: 'worker' }) : source;
  const n = loader.dataset.splits[split].length;
  if (n === 0) {
    if (own) await loader.close();
    throw new Error(`evaluate: the ${split} split is empty`);
  }
  const batches = Math.ceil(n / bs);
  const log = new ScalarLog(FIELDS, batches);
  const counts: Tensor[] = [];
  const sizes: number[] = [];
  const gridN = Math.min(opts.gridImages ?? 16, n);
  let grid: Float32Array | null = null;
  let gridRecon: Tensor | null = null;
  try {
    for await (const b of loader.iterate(split, { batchSize: bs })) {
      if (opts.signal?.aborted) throw new Error('evaluation interrupted');
      const first = counts.length === 0;
      const out = tidy(() =>
        noGrad(() => {
          const x = tensor(b.data, [b.count, 3, IMAGE_SIZE, IMAGE_SIZE]);
          const o = model.forward(x, { train: false });
          log.record([o.loss, o.recon, o.codebookLoss, o.commitmentLoss, o.perplexity]);
          return { counts: o.counts, xHat: first && opts.gridPath ? o.xHat : null };
        }),
      );
      counts.push(keep(out.counts));
      sizes.push(b.count);
      if (out.xHat) {
        gridRecon = keep(out.xHat);
        grid = b.data;
      }
    }
    const rows = await log.read();
    const hist = new Float64Array(model.config.codebookSize);
    for (const c of counts) {
      const v = (await c.read()) as Uint32Array;
      for (let i = 0; i < v.length; i++) hist[i] += v[i];
    }
    const w = (f: (typeof FIELDS)[number]) => rows.reduce((s, r, i) => s + r[f] * sizes[i], 0) / n;
    const { perplexity, used } = histogramStats(hist);
    const recon = w('recon');
    if (opts.gridPath && grid && gridRecon) {
      const recon = (await gridRecon.read()) as Float32Array;
      writeReconGrid(opts.gridPath, grid, recon, Math.min(gridN, b0(grid)));
    }
    const k = model.config.codebookSize;
    return {
      split,
      images: n,
      recon_mse: recon,
      psnr: psnr(recon),
      loss: w('loss'),
      codebook_loss: w('codebook'),
      commitment_loss: w('commitment'),
      perplexity,
      batch_perplexity: rows.reduce((s, r) => s + r.perplexity, 0) / rows.length,
      codebook_usage: used,
      codebook_usage_fraction: used / k,
      codebook_size: k,
      batch_size: bs,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    log.dispose();
    for (const c of counts) c.dispose();
    (gridRecon as Tensor | null)?.dispose();
    if (own) await loader.close();
  }
}

const VALUES = 3 * IMAGE_SIZE * IMAGE_SIZE;
function b0(images: Float32Array): number {
  return Math.floor(images.length / VALUES);
}

/**
 * Writes originals and reconstructions as a PNG: rows of up to 8 originals, each followed by a
 * row of their reconstructions, at 2x scale.
 */
export function writeReconGrid(path: string, originals: Float32Array, recons: Float32Array, n: number): void {
  const cols = Math.min(8, n);
  const rows = Math.ceil(n / cols);
  const out = new Float32Array(rows * 2 * cols * VALUES).fill(0); // mid grey in [-0.5, 0.5]
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if (i >= n) continue;
      out.set(originals.subarray(i * VALUES, (i + 1) * VALUES), (2 * r * cols + c) * VALUES);
      out.set(recons.subarray(i * VALUES, (i + 1) * VALUES), ((2 * r + 1) * cols + c) * VALUES);
    }
  }
  writeImageGrid(path, out, rows * 2 * cols, cols, { scale: 2 });
}
