// The seed's VQ-VAE (../shared/SPEC.md sections 1-3): encoder, vector quantiser (codebook
// loss or EMA codebook), decoder; parameters under PyTorch's state_dict names.
import { noGrad } from '../engine/autograd.js';
import { add } from '../engine/elementwise.js';
import { mseLoss } from '../engine/loss.js';
import { Rng } from '../engine/random.js';
import { gather, permute, reshape } from '../engine/shape.js';
import { type Tensor, keep } from '../engine/tensor.js';
import { codebookStats, codeCounts, nearestCode, vectorQuantize } from '../engine/vq.js';
import { EmaCodebook } from '../engine/vq_ema.js';
import { type VqVaeConfig, resolveConfig } from './config.js';
import { decoder, encoder } from './networks.js';
import { initParams } from './params.js';

export const CODEBOOK = '_vq_vae._embedding.weight';
/** Names of the EMA state in the zalando/seed PyTorch module (VectorQuantizerEMA). */
export const EMA_COUNT = '_vq_vae._ema_cluster_size';
export const EMA_SUM = '_vq_vae._ema_w';

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

  /** z_e as rows [B*h*w, D] (NHWC order) and the latent grid shape. */
  private encodeRows(x: Tensor): { rows: Tensor; b: number; h: number; w: number } {
    this.checkImages(x);
    const ze = encoder(this.state, x, this.config);
    const [b, d, h, w] = ze.shape;
    return { rows: reshape(permute(ze, [0, 2, 3, 1]), [b * h * w, d]), b, h, w };
  }

  private decodeRows(rows: Tensor, b: number, h: number, w: number): Tensor {
    const z = permute(reshape(rows, [b, h, w, this.config.embeddingDim]), [0, 3, 1, 2]);
    return decoder(this.state, z, this.config);
  }

  /**
   * Full pass: reconstruction, losses and statistics. With `train` and an EMA codebook, the
   * codebook is updated (after quantising with the old one).
   */
  forward(x: Tensor, opts: { train?: boolean } = {}): ForwardResult {
    const { rows, b, h, w } = this.encodeRows(x);
    const q = vectorQuantize(rows, this.codebook, { beta: this.config.beta, codebookLoss: !this.ema });
    if (this.ema && opts.train) noGrad(() => this.ema!.update(rows, q.indices).dispose());
    const xHat = this.decodeRows(q.zq, b, h, w);
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
