// The encoder and decoder of the seed's VQ-VAE (../shared/SPEC.md section 1), as functions of
// a parameter map keyed by PyTorch state_dict names. Activations are NCHW. Given f16 images and
// f16 weights (VqVae.forward with precision f16) they run in f16: activations are f16 between
// layers, and the ReLUs and residual adds are f16 kernels.
import { castTo } from '../engine/cast.js';
import { type ConvTranspose2dOptions, conv2d, convTranspose2d } from '../engine/conv.js';
import { addRelu, relu } from '../engine/elementwise.js';
import type { Tensor } from '../engine/tensor.js';
import type { VqVaeConfig } from './config.js';

/**
 * Whether the conv kernels read and write f16 storage (they do: engine/conv's ConvStorage). Off,
 * an f16 network casts a conv's operands to f32 and its output back to f16 (values rounded to
 * f16 where the f16 kernels store them), the reference the f16 kernels were checked against.
 */
const CONV_TAKES_F16 = true;

/** conv2d (or convTranspose2d) of f32 or f16 operands; the output has x's dtype. */
function conv(x: Tensor, w: Tensor, b: Tensor | null, opts: ConvTranspose2dOptions = {}, transposed = false): Tensor {
  const op = transposed ? convTranspose2d : conv2d;
  const half = x.dtype === 'f16' || w.dtype === 'f16' || b?.dtype === 'f16';
  if (!half || CONV_TAKES_F16) return op(x, w, b, opts);
  const y = op(castTo(x, 'f32'), castTo(w, 'f32'), b && castTo(b, 'f32'), opts);
  return castTo(y, x.dtype as 'f32' | 'f16');
}

export type Params = Map<string, Tensor>;

function p(params: Params, name: string): Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`missing parameter '${name}'`);
  return t;
}

/**
 * Residual stack: each block is x + conv1x1(relu(conv3x3(relu(x)))) (the skip carries x
 * itself), then one ReLU on the stack's output. Each skip add comes with the ReLU that
 * follows it (the next block's, or the stack's) from one kernel (addRelu).
 */
function residualStack(params: Params, prefix: string, x: Tensor, c: VqVaeConfig): Tensor {
  let h = x;
  let hRelu = relu(x);
  for (let i = 0; i < c.residualBlocks; i++) {
    const block = `${prefix}._residual_stack._layers.${i}._block`;
    const inner = conv(hRelu, p(params, `${block}.1.weight`), null, { padding: 1, activation: 'relu' });
    [h, hRelu] = addRelu(h, conv(inner, p(params, `${block}.3.weight`), null));
  }
  return hRelu;
}

/** x [B, C, 64, 64] -> z_e [B, D, 16, 16]. */
export function encoder(params: Params, x: Tensor, c: VqVaeConfig): Tensor {
  let h = conv(x, p(params, '_encoder._conv_1.weight'), p(params, '_encoder._conv_1.bias'), { stride: 2, padding: 1, activation: 'relu' });
  h = conv(h, p(params, '_encoder._conv_2.weight'), p(params, '_encoder._conv_2.bias'), { stride: 2, padding: 1, activation: 'relu' });
  h = conv(h, p(params, '_encoder._conv_3.weight'), p(params, '_encoder._conv_3.bias'), { padding: 1 });
  h = residualStack(params, '_encoder', h, c);
  return conv(h, p(params, '_pre_vq_conv.weight'), p(params, '_pre_vq_conv.bias'));
}

/** z_q [B, D, 16, 16] -> x_hat [B, C, 64, 64] (linear output). */
export function decoder(params: Params, z: Tensor, c: VqVaeConfig): Tensor {
  let h = conv(z, p(params, '_decoder._conv_1.weight'), p(params, '_decoder._conv_1.bias'), { padding: 1 });
  h = residualStack(params, '_decoder', h, c);
  h = conv(h, p(params, '_decoder._conv_trans_1.weight'), p(params, '_decoder._conv_trans_1.bias'), { stride: 2, padding: 1, activation: 'relu' }, true);
  return conv(h, p(params, '_decoder._conv_trans_2.weight'), p(params, '_decoder._conv_trans_2.bias'), { stride: 2, padding: 1 }, true);
}
