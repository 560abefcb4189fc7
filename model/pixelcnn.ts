// A gated PixelCNN prior over VQ-VAE code maps (van den Oord et al. 2016, "Conditional Image
// Generation with PixelCNN Decoders"; ../shared/SPEC.md section 6), without the blind spot:
//
//   codes [B, H, W] --embedding--> [B, C, H, W] = v0 = h0
//   layer 0 (mask A, k=7) and layers 1..N (mask B, k=3), each:
//     v_pre = crop_rows(conv_v(v))         kernel (k/2+1, k), padding (k/2, k/2), first H rows
//     v'    = gate(v_pre)                  tanh(a) * sigmoid(b)
//     h_pre = crop_cols(conv_h(h)) + 1x1(v_pre)   kernel (1, k/2+1), padding (0, k/2), first W cols
//     g     = gate(h_pre)
//     h'    = 1x1(g) (+ h for mask-B layers: residual);   skip += 1x1(g)
//   head: relu(skip) -> 1x1 -> relu -> 1x1 -> logits [B, K, H, W]
//
// Why it is causal in raster order: a vertical output at row i sees its input's rows <= i
// (mask A: < i, the kernel's last row zeroed). Layer 0 makes v depend on code rows < i only,
// and later layers keep that. A horizontal output at (i, j) sees its input's columns <= j of
// row i (mask A: < j), plus v at (i, j), which depends on rows < i. So the logits at (i, j)
// depend only on codes strictly before (i, j) in raster order, and on all of them within the
// receptive field (no blind spot: the vertical stack covers the full width above).
import { conv2d } from '../engine/conv.js';
import { add, mul, relu } from '../engine/elementwise.js';
import { gatedActivation } from '../engine/gate.js';
import { Rng } from '../engine/random.js';
import { gather, permute, reshape, slice } from '../engine/shape.js';
import { type Tensor, keep, tensor } from '../engine/tensor.js';

export interface PixelCnnConfig {
  /** Number of codes K (the VQ-VAE's codebook size). */
  numCodes: number;
  /** Channels of the stacks (the gates' outputs); the gate inputs have twice as many. */
  width: number;
  /** Mask-B gated residual layers after the mask-A first layer. */
  layers: number;
  /** Kernel of the first (mask-A) layer; odd. */
  firstKernel: number;
  /** Kernel of the mask-B layers; odd. */
  kernel: number;
  /** Hidden channels of the head's first 1x1 conv. */
  headWidth: number;
}

/** Defaults for 16x16 maps with K = 512 (SPEC section 6: ~15 layers, width 64-128). */
export const PIXELCNN_DEFAULTS: Omit<PixelCnnConfig, 'numCodes'> = { width: 128, layers: 15, firstKernel: 7, kernel: 3, headWidth: 256 };

export function resolvePixelCnnConfig(c: Partial<PixelCnnConfig> & { numCodes: number }): PixelCnnConfig {
  const r: PixelCnnConfig = { ...PIXELCNN_DEFAULTS, ...c };
  const int = (k: keyof PixelCnnConfig, min: number) => {
    if (!Number.isInteger(r[k]) || r[k] < min) throw new Error(`PixelCNN: ${k} must be an integer >= ${min}, got ${r[k]}`);
  };
  int('numCodes', 2);
  int('width', 1);
  int('layers', 0);
  int('firstKernel', 1);
  int('kernel', 1);
  int('headWidth', 1);
  if (r.firstKernel % 2 === 0 || r.kernel % 2 === 0) throw new Error(`PixelCNN: kernels must be odd, got firstKernel ${r.firstKernel}, kernel ${r.kernel}`);
  return r;
}

// ---- masks

export type MaskType = 'A' | 'B';

/**
 * The classic raster-order mask of a k_h x k_w kernel centred on the output pixel: taps above
 * the centre row, and left of the centre in its row, are 1; the centre is 1 for mask B, 0 for
 * mask A; the rest 0. Shape [kh, kw] (multiply into a [out, in, kh, kw] weight by broadcasting).
 */
export function causalMask(kh: number, kw: number, type: MaskType): Float32Array {
  const m = new Float32Array(kh * kw);
  const cy = Math.floor(kh / 2);
  const cx = Math.floor(kw / 2);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      const before = y < cy || (y === cy && x < cx);
      const centre = y === cy && x === cx;
      m[y * kw + x] = before || (centre && type === 'B') ? 1 : 0;
    }
  }
  return m;
}

/**
 * Masks of the gated PixelCNN's shaped kernels: the vertical kernel (k/2+1, k) keeps every row
 * but, for mask A, the last (the output's own row); the horizontal kernel (1, k/2+1) keeps
 * every column but, for mask A, the last (the output's own column). Shape [kh, kw].
 */
export function stackMask(stack: 'vertical' | 'horizontal', k: number, type: MaskType): Float32Array {
  const half = Math.floor(k / 2);
  const [kh, kw] = stack === 'vertical' ? [half + 1, k] : [1, half + 1];
  const m = new Float32Array(kh * kw).fill(1);
  if (type === 'A') {
    if (stack === 'vertical') m.fill(0, half * kw);
    else m[half] = 0;
  }
  return m;
}

/**
 * conv2d with its weight multiplied by a constant 0/1 mask first (mask [kh, kw] or the weight's
 * shape); masked taps then get a zero gradient too, so they stay whatever they were.
 */
export function maskedConv2d(x: Tensor, w: Tensor, mask: Tensor, bias: Tensor | null, opts: Parameters<typeof conv2d>[3] = {}): Tensor {
  const [kh, kw] = w.shape.slice(2);
  if (!(mask.shape.join() === `${kh},${kw}` || mask.shape.join() === w.shape.join())) {
    throw new Error(`maskedConv2d: mask [${mask.shape.join(', ')}] does not fit weight [${w.shape.join(', ')}] (needs [${kh}, ${kw}] or the weight's shape)`);
  }
  return conv2d(x, mul(w, mask), bias, opts);
}

// ---- the model

/** Parameter names and shapes in order. */
export function pixelCnnParamShapes(c: PixelCnnConfig): [string, number[]][] {
  const out: [string, number[]][] = [['embedding', [c.numCodes, c.width]]];
  const C = c.width;
  for (let l = 0; l <= c.layers; l++) {
    const k = l === 0 ? c.firstKernel : c.kernel;
    const half = Math.floor(k / 2);
    const p = `layers.${l}.`;
    out.push(
      [p + 'v.weight', [2 * C, C, half + 1, k]],
      [p + 'v.bias', [2 * C]],
      [p + 'h.weight', [2 * C, C, 1, half + 1]],
      [p + 'h.bias', [2 * C]],
      [p + 'v2h.weight', [2 * C, 2 * C, 1, 1]],
      [p + 'v2h.bias', [2 * C]],
      [p + 'res.weight', [C, C, 1, 1]],
      [p + 'res.bias', [C]],
      [p + 'skip.weight', [C, C, 1, 1]],
      [p + 'skip.bias', [C]],
    );
  }
  out.push(['head.0.weight', [c.headWidth, C, 1, 1]], ['head.0.bias', [c.headWidth]], ['head.1.weight', [c.numCodes, c.headWidth, 1, 1]], ['head.1.bias', [c.numCodes]]);
  return out;
}

export function countPixelCnnParams(c: PixelCnnConfig): number {
  return pixelCnnParamShapes(c).reduce((s, [, shape]) => s + shape.reduce((a, d) => a * d, 1), 0);
}

export class PixelCnn {
  readonly config: PixelCnnConfig;
  /** Every parameter by name, in pixelCnnParamShapes order. */
  readonly params = new Map<string, Tensor>();
  private readonly maskV: Tensor;
  private readonly maskH: Tensor;

  constructor(config: Partial<PixelCnnConfig> & { numCodes: number }, opts: { seed?: number } = {}) {
    this.config = resolvePixelCnnConfig(config);
    const rng = new Rng(opts.seed ?? 0);
    for (const [name, shape] of pixelCnnParamShapes(this.config)) {
      const n = shape.reduce((a, d) => a * d, 1);
      let data: Float32Array;
      if (name === 'embedding') data = rng.normalArray(n);
      else {
        // PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
        const fanIn = name.endsWith('.bias') ? this.paramFanIn(name) : shape.slice(1).reduce((a, d) => a * d, 1);
        const bound = 1 / Math.sqrt(fanIn);
        data = rng.uniformArray(n, -bound, bound);
      }
      this.params.set(name, keep(tensor(data, shape).requireGrad()));
    }
    const k = this.config.firstKernel;
    const half = Math.floor(k / 2);
    this.maskV = keep(tensor(stackMask('vertical', k, 'A'), [half + 1, k]));
    this.maskH = keep(tensor(stackMask('horizontal', k, 'A'), [1, half + 1]));
  }

  private paramFanIn(biasName: string): number {
    const shape = pixelCnnParamShapes(this.config).find(([n]) => n === biasName.replace(/\.bias$/, '.weight'))![1];
    return shape.slice(1).reduce((a, d) => a * d, 1);
  }

  parameters(): Tensor[] {
    return [...this.params.values()];
  }

  private p(name: string): Tensor {
    return this.params.get(name)!;
  }

  /** The embedding of `codes` (u32/i32 [B, H, W]) as [B, C, H, W] (differentiable in the table). */
  embed(codes: Tensor): Tensor {
    if (codes.rank !== 3 || codes.dtype === 'f32') throw new Error(`PixelCnn: expected integer codes [B, H, W], got ${codes.describe()}`);
    const [b, h, w] = codes.shape;
    const rows = gather(this.p('embedding'), reshape(codes, [b * h * w]), 0);
    return permute(reshape(rows, [b, h, w, this.config.width]), [0, 3, 1, 2]);
  }

  /** Logits [B, K, H, W] from codes [B, H, W]. */
  forward(codes: Tensor): Tensor {
    return this.forwardEmbedded(this.embed(codes));
  }

  /** Logits [B, K, H, W] from an embedded input [B, C, H, W] (the causality test differentiates this). */
  forwardEmbedded(x: Tensor): Tensor {
    const c = this.config;
    if (x.rank !== 4 || x.shape[1] !== c.width) throw new Error(`PixelCnn: expected input [B, ${c.width}, H, W], got ${x.describe()}`);
    const [B, , H, W] = x.shape;
    let v = x;
    let h = x;
    let skip: Tensor | null = null;
    for (let l = 0; l <= c.layers; l++) {
      const k = l === 0 ? c.firstKernel : c.kernel;
      const half = Math.floor(k / 2);
      const p = `layers.${l}.`;
      const wv = l === 0 ? mul(this.p(p + 'v.weight'), this.maskV) : this.p(p + 'v.weight');
      const wh = l === 0 ? mul(this.p(p + 'h.weight'), this.maskH) : this.p(p + 'h.weight');
      const vPre = slice(conv2d(v, wv, this.p(p + 'v.bias'), { padding: [half, half] }), [0, 0, 0, 0], [B, 2 * c.width, H, W]);
      const hConv = slice(conv2d(h, wh, this.p(p + 'h.bias'), { padding: [0, half] }), [0, 0, 0, 0], [B, 2 * c.width, H, W]);
      const hPre = add(hConv, conv2d(vPre, this.p(p + 'v2h.weight'), this.p(p + 'v2h.bias')));
      const g = gatedActivation(hPre);
      const res = conv2d(g, this.p(p + 'res.weight'), this.p(p + 'res.bias'));
      const s = conv2d(g, this.p(p + 'skip.weight'), this.p(p + 'skip.bias'));
      skip = skip ? add(skip, s) : s;
      h = l === 0 ? res : add(h, res);
      if (l < c.layers) v = gatedActivation(vPre); // the last layer's vertical output feeds nothing
    }
    const z = conv2d(relu(skip!), this.p('head.0.weight'), this.p('head.0.bias'), { activation: 'relu' });
    return conv2d(z, this.p('head.1.weight'), this.p('head.1.bias'));
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.maskV.dispose();
    this.maskH.dispose();
  }
}
