// The VQ-VAE's configuration. Defaults are the seed's model (../shared/SPEC.md section 1):
// 694,851 parameters at K=512, D=64.

export interface VqVaeConfig {
  /** Image channels. */
  inChannels: number;
  /** Hidden width H of the encoder/decoder trunk. */
  hidden: number;
  /** Residual width R inside each residual block. */
  residualHidden: number;
  /** Residual blocks per stack. */
  residualBlocks: number;
  /** Codebook size K. */
  codebookSize: number;
  /** Code width D. */
  embeddingDim: number;
  /** Commitment cost beta. */
  beta: number;
  /** EMA codebook (SPEC section 3) instead of the codebook loss. */
  ema: boolean;
  emaDecay: number;
  emaEpsilon: number;
  /** Re-seed codes whose EMA count falls below this (0: never). */
  deadCodeThreshold: number;
}

export const defaultConfig: VqVaeConfig = {
  inChannels: 3,
  hidden: 128,
  residualHidden: 32,
  residualBlocks: 2,
  codebookSize: 512,
  embeddingDim: 64,
  beta: 1.25,
  ema: false,
  emaDecay: 0.99,
  emaEpsilon: 1e-5,
  deadCodeThreshold: 0,
};

/** Fills defaults and checks every field; errors name the field and the value. */
export function resolveConfig(partial: Partial<VqVaeConfig> = {}): VqVaeConfig {
  const c = { ...defaultConfig, ...partial };
  const positiveInts: (keyof VqVaeConfig)[] = ['inChannels', 'hidden', 'residualHidden', 'codebookSize', 'embeddingDim'];
  for (const k of positiveInts) {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`config.${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (!Number.isInteger(c.residualBlocks) || c.residualBlocks < 0) throw new Error(`config.residualBlocks must be a non-negative integer, got ${c.residualBlocks}`);
  if (!(c.beta >= 0) || !Number.isFinite(c.beta)) throw new Error(`config.beta must be a finite number >= 0, got ${c.beta}`);
  if (!(c.emaDecay > 0 && c.emaDecay < 1)) throw new Error(`config.emaDecay must be in (0, 1), got ${c.emaDecay}`);
  if (!(c.emaEpsilon > 0)) throw new Error(`config.emaEpsilon must be > 0, got ${c.emaEpsilon}`);
  if (!(c.deadCodeThreshold >= 0)) throw new Error(`config.deadCodeThreshold must be >= 0, got ${c.deadCodeThreshold}`);
  if (typeof c.ema !== 'boolean') throw new Error(`config.ema must be true or false, got ${JSON.stringify(c.ema)}`);
  return c;
}
