// The VQ-VAE's parameters under PyTorch state_dict names and layouts (../shared/SPEC.md
// section 7): the zalando notebook's names inside the engine (files may use the seed
// repository's instead: names.ts), initialised as PyTorch initialises them by default.
import { Rng } from '../engine/random.js';
import { Tensor, tensor } from '../engine/tensor.js';
import type { VqVaeConfig } from './config.js';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** PyTorch default init: U(-bound, bound). */
  bound: number;
}

function conv(prefix: string, out: number, inp: number, k: number, bias: boolean): ParamSpec[] {
  const bound = 1 / Math.sqrt(inp * k * k);
  const specs: ParamSpec[] = [{ name: `${prefix}.weight`, shape: [out, inp, k, k], bound }];
  if (bias) specs.push({ name: `${prefix}.bias`, shape: [out], bound });
  return specs;
}

/** ConvTranspose2d weight is [in, out, kh, kw]; PyTorch takes fan_in from dim 1 (out) x kernel area. */
function convT(prefix: string, inp: number, out: number, k: number): ParamSpec[] {
  const bound = 1 / Math.sqrt(out * k * k);
  return [
    { name: `${prefix}.weight`, shape: [inp, out, k, k], bound },
    { name: `${prefix}.bias`, shape: [out], bound },
  ];
}

function residualStack(prefix: string, c: VqVaeConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  for (let i = 0; i < c.residualBlocks; i++) {
    const block = `${prefix}._residual_stack._layers.${i}._block`;
    specs.push(...conv(`${block}.1`, c.residualHidden, c.hidden, 3, false));
    specs.push(...conv(`${block}.3`, c.hidden, c.residualHidden, 1, false));
  }
  return specs;
}

/** Every trainable tensor in state_dict order. */
export function paramSpecs(c: VqVaeConfig): ParamSpec[] {
  const h2 = Math.max(1, Math.floor(c.hidden / 2));
  return [
    ...conv('_encoder._conv_1', h2, c.inChannels, 4, true),
    ...conv('_encoder._conv_2', c.hidden, h2, 4, true),
    ...conv('_encoder._conv_3', c.hidden, c.hidden, 3, true),
    ...residualStack('_encoder', c),
    ...conv('_pre_vq_conv', c.embeddingDim, c.hidden, 1, true),
    { name: '_vq_vae._embedding.weight', shape: [c.codebookSize, c.embeddingDim], bound: 1 / c.codebookSize },
    ...conv('_decoder._conv_1', c.hidden, c.embeddingDim, 3, true),
    ...residualStack('_decoder', c),
    ...convT('_decoder._conv_trans_1', c.hidden, h2, 4),
    ...convT('_decoder._conv_trans_2', h2, c.inChannels, 4),
  ];
}

export function countParams(c: VqVaeConfig): number {
  return paramSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** Fresh parameters, U(-bound, bound) from `rng` in state_dict order. */
export function initParams(c: VqVaeConfig, rng: Rng): Map<string, Tensor> {
  const params = new Map<string, Tensor>();
  for (const s of paramSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    params.set(s.name, tensor(rng.uniformArray(n, -s.bound, s.bound), s.shape).requireGrad());
  }
  return params;
}
