// The seed's VQ-VAE (../shared/SPEC.md sections 1-3): encoder, vector quantiser (codebook
// loss or EMA codebook), decoder; parameters under PyTorch's state_dict names.
import { noGrad } from '../engine/autograd.js';
import { castTo } from '../engine/cast.js';
import { add } from '../engine/elementwise.js';
import { mseLoss } from '../engine/loss.js';
import { Rng } from '../engine/random.js';
import { gather, permute, reshape } from '../engine/shape.js';
import { type Tensor, assertF16Supported, keep } from '../engine/tensor.js';
import { codebookStats, codeCounts, nearestCode, vectorQuantize } from '../engine/vq.js';
import { EmaCodebook } from '../engine/vq_ema.js';
import { type VqVaeConfig, resolveConfig } from './config.js';
import { type Params, decoder, encoder } from './networks.js';
import { initParams } from './params.js';

export const CODEBOOK = '_vq_vae._embedding.weight';
/** Names of the EMA state in the zalando/seed PyTorch module (VectorQuantizerEMA). */
export const EMA_COUNT = '_vq_vae._ema_cluster_size';
export const EMA_SUM = '_vq_vae._ema_w';

/**
 * The precision of a forward pass. f16 (devices with shader-f16): the images and f16 copies of
 * the encoder's and decoder's weights go through the network in f16 (the f32 weights stay the
 * parameters; their gradients arrive in f32 through the casts); the quantiser and the losses
 * stay f32. Train with a LossScaler (engine/loss_scale.ts) so small gradients survive f16.
 */
export type Precision = 'f32' | 'f16';

export interface ForwardOptions {
  /** With an EMA codebook, update it (after quantising with the old one). */
  train?: boolean;
  /** Default f32. */
  precision?: Precision;
}

export interface ForwardResult {
  /** [B, C, H, W] reconstruction. */
  xHat: Tensor;
  /** u32 [B * h * w] code of each latent position (row-major over b, y, x). */
  indices: Tensor;
  /** [] mean((x_hat - x)^2). */
  recon: Tensor;
  /** [] mean((e_k - sg z_e)^2) (0 with an EMA codebook). */
  codebookLoss: Tensor;
  /** [] beta * mean((sg e_k - z_e)^2). */
  commitmentLoss: Tensor;
  /** [] recon + codebook + commitment: the training loss. */
  loss: Tensor;
  /** u32 [K] codes' counts in this batch. */
  counts: Tensor;
  /** [] batch perplexity. */
  perplexity: Tensor;
}

export class VqVae {
  readonly config: VqVaeConfig;
  /** Every tensor of the state_dict, in order (EMA state included when config.ema). */
  readonly state: Map<string, Tensor>;
  readonly ema: EmaCodebook | null;

  constructor(config: Partial<VqVaeConfig> = {}, opts: { seed?: number; rng?: Rng } = {}) {
    this.config = resolveConfig(config);
    const rng = opts.rng ?? new Rng(opts.seed ?? 0);
    this.state = initParams(this.config, rng);
    for (const t of this.state.values()) keep(t);
    if (this.config.ema) {
      const codebook = this.state.get(CODEBOOK)!;
      codebook.requireGrad(false);
      this.ema = new EmaCodebook(codebook, {
        decay: this.config.emaDecay,
        eps: this.config.emaEpsilon,
        restartThreshold: this.config.deadCodeThreshold,
        rng: new Rng(rng.nextU32()),
      });
      this.state.set(EMA_COUNT, this.ema.emaCount);
      this.state.set(EMA_SUM, this.ema.emaSum);
    } else {
      this.ema = null;
    }
  }

  /** The tensors the optimiser trains (the codebook only without EMA). */
  parameters(): Tensor[] {
    return [...this.state.values()].filter((t) => t.requiresGrad);
  }

  get codebook(): Tensor {
    return this.state.get(CODEBOOK)!;
  }

  /** Latent grid size for an image size (two stride-2 convs). */
  latentSize(h: number, w: number): [number, number] {
    return [Math.floor(h / 4), Math.floor(w / 4)];
  }

  private checkImages(x: Tensor): void {
    const c = this.config.inChannels;
    if (x.rank !== 4 || x.shape[1] !== c || x.shape[2] < 4 || x.shape[3] < 4) {
      throw new Error(`VqVae: expected images [B, ${c}, H, W] with H, W >= 4, got ${x.describe()}`);
    }
    if (x.dtype !== 'f32') throw new Error(`VqVae: images must be f32, got ${x.describe()}`);
  }

  /**
   * z_e as rows [B*h*w, D] (NHWC order) in the network's precision, and the latent grid shape;
   * `params` and x in that precision. The code search reads f16 rows as they are (f32 distances).
   */
  private encodeRows(x: Tensor, params: Params = this.state): { rows: Tensor; b: number; h: number; w: number } {
    const ze = encoder(params, x, this.config);
    const [b, d, h, w] = ze.shape;
    return { rows: reshape(permute(ze, [0, 2, 3, 1]), [b * h * w, d]), b, h, w };
  }

  /** f32 rows back to f32 images, through the decoder in `precision` (with `params` of it). */
  private decodeRows(rows: Tensor, b: number, h: number, w: number, precision: Precision = 'f32', params: Params = this.state): Tensor {
    const z = permute(reshape(rows, [b, h, w, this.config.embeddingDim]), [0, 3, 1, 2]);
    if (precision === 'f32') return decoder(params, z, this.config);
    return castTo(decoder(params, castTo(z, 'f16'), this.config), 'f32');
  }

  /** f16 copies of the encoder's and decoder's weights (autograd: gradients reach the f32 ones). */
  private halfWeights(): Params {
    const vq = new Set([CODEBOOK, EMA_COUNT, EMA_SUM]);
    const half: Params = new Map();
    for (const [name, t] of this.state) if (!vq.has(name)) half.set(name, castTo(t, 'f16'));
    return half;
  }

  /**
   * Full pass: reconstruction, losses and statistics. With `train` and an EMA codebook, the
   * codebook is updated (after quantising with the old one). The losses are f32 in either
   * precision (against the f32 images).
   */
  forward(x: Tensor, opts: ForwardOptions = {}): ForwardResult {
    const precision = opts.precision ?? 'f32';
    if (precision !== 'f32' && precision !== 'f16') throw new Error(`VqVae.forward: precision must be 'f32' or 'f16', got ${JSON.stringify(precision)}`);
    this.checkImages(x);
    if (precision === 'f16') assertF16Supported('VqVae.forward with precision f16');
    const params = precision === 'f16' ? this.halfWeights() : this.state;
    const { rows, b, h, w } = this.encodeRows(precision === 'f16' ? castTo(x, 'f16') : x, params);
    const q = vectorQuantize(rows, this.codebook, { beta: this.config.beta, codebookLoss: !this.ema });
    // The EMA codebook's statistics stay f32 (f16 rows widen exactly).
    if (this.ema && opts.train) noGrad(() => this.ema!.update(rows.dtype === 'f32' ? rows : castTo(rows, 'f32'), q.indices).dispose());
    const xHat = this.decodeRows(q.zq, b, h, w, precision, params);
    const recon = mseLoss(xHat, x);
    const loss = add(recon, q.loss);
    const counts = codeCounts(q.indices, this.config.codebookSize);
    const { perplexity, used } = codebookStats(counts);
    used.dispose();
    return {
      xHat,
      indices: q.indices,
      recon,
      codebookLoss: q.codebookLoss,
      commitmentLoss: q.commitmentLoss,
      loss,
      counts,
      perplexity,
    };
  }

  /** Images [B, C, H, W] -> codes u32 [B, h, w]. */
  encode(x: Tensor): Tensor {
    this.checkImages(x);
    return noGrad(() => {
      const { rows, b, h, w } = this.encodeRows(x);
      return reshape(nearestCode(rows, this.codebook).indices, [b, h, w]);
    });
  }

  /** Codes [B, h, w] (u32 or i32) -> images [B, C, 4h, 4w]. */
  decode(codes: Tensor): Tensor {
    if (codes.rank !== 3 || codes.dtype === 'f32') {
      throw new Error(`VqVae.decode: expected integer codes [B, h, w], got ${codes.describe()}`);
    }
    const [b, h, w] = codes.shape;
    return noGrad(() => {
      const rows = gather(this.codebook, reshape(codes, [b * h * w]), 0);
      return this.decodeRows(rows, b, h, w);
    });
  }

  dispose(): void {
    for (const t of this.state.values()) t.dispose();
    this.ema?.dispose();
  }
}
