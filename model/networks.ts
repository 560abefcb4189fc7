// The encoder and decoder of the seed's VQ-VAE (../shared/SPEC.md section 1), as functions of
// a parameter map keyed by PyTorch state_dict names. Activations are NCHW.
import { conv2d, convTranspose2d } from '../engine/conv.js';
import { add, relu } from '../engine/elementwise.js';
import type { Tensor } from '../engine/tensor.js';
import type { VqVaeConfig } from './config.js';

export type Params = Map<string, Tensor>;

function p(params: Params, name: string): Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`missing parameter '${name}'`);
  return t;
}

/**
 * Residual stack: each block is x + conv1x1(relu(conv3x3(relu(x)))) (the skip carries x
 * itself), then one ReLU on the stack's output.
 */
function residualStack(params: Params, prefix: string, x: Tensor, c: VqVaeConfig): Tensor {
  let h = x;
  for (let i = 0; i < c.residualBlocks; i++) {
    const block = `${prefix}._residual_stack._layers.${i}._block`;
    const inner = conv2d(relu(h), p(params, `${block}.1.weight`), null, { padding: 1, activation: 'relu' });
    h = add(h, conv2d(inner, p(params, `${block}.3.weight`), null));
  }
  return relu(h);
}

/** x [B, C, 64, 64] -> z_e [B, D, 16, 16]. */
export function encoder(params: Params, x: Tensor, c: VqVaeConfig): Tensor {
  let h = conv2d(x, p(params, '_encoder._conv_1.weight'), p(params, '_encoder._conv_1.bias'), { stride: 2, padding: 1, activation: 'relu' });
  h = conv2d(h, p(params, '_encoder._conv_2.weight'), p(params, '_encoder._conv_2.bias'), { stride: 2, padding: 1, activation: 'relu' });
  h = conv2d(h, p(params, '_encoder._conv_3.weight'), p(params, '_encoder._conv_3.bias'), { padding: 1 });
  h = residualStack(params, '_encoder', h, c);
  return conv2d(h, p(params, '_pre_vq_conv.weight'), p(params, '_pre_vq_conv.bias'));
}

/** z_q [B, D, 16, 16] -> x_hat [B, C, 64, 64] (linear output). */
export function decoder(params: Params, z: Tensor, c: VqVaeConfig): Tensor {
  let h = conv2d(z, p(params, '_decoder._conv_1.weight'), p(params, '_decoder._conv_1.bias'), { padding: 1 });
  h = residualStack(params, '_decoder', h, c);
  h = convTranspose2d(h, p(params, '_decoder._conv_trans_1.weight'), p(params, '_decoder._conv_trans_1.bias'), { stride: 2, padding: 1, activation: 'relu' });
  return convTranspose2d(h, p(params, '_decoder._conv_trans_2.weight'), p(params, '_decoder._conv_trans_2.bias'), { stride: 2, padding: 1 });
}
