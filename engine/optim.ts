// Optimisers with PyTorch semantics (torch.optim.Adam, torch.optim.SGD), one fused kernel per
// parameter per step (shaders/optim.wgsl) that updates the parameter and its state in place.
// State tensors are created lazily on a parameter's first step, as PyTorch does.
import { zeroGrad } from './autograd.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, empty, keep, tensor, zeros } from './tensor.js';

/** step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t), from the CPU in float64. */
const ADAM_PARAMS = paramBlock({
  n: 'u32', one_minus_beta1: 'f32', beta2: 'f32', one_minus_beta2: 'f32', eps: 'f32', weight_decay: 'f32', step_size: 'f32', bc2_sqrt: 'f32',
}, 1);
const SGD_PARAMS = paramBlock({ n: 'u32', lr: 'f32', weight_decay: 'f32' }, 1);
const SGD_MOMENTUM_PARAMS = paramBlock({
  n: 'u32', lr: 'f32', weight_decay: 'f32', momentum: 'f32', one_minus_dampening: 'f32', first: 'u32', nesterov: 'u32',
}, 1);

const adamKernel = shaderKernel('optim', 'adam', {}, ADAM_PARAMS);
const sgdKernel = shaderKernel('optim', 'sgd', {}, SGD_PARAMS);
const sgdMomentumKernel = shaderKernel('optim', 'sgd_momentum', {}, SGD_MOMENTUM_PARAMS);

function checkParams(op: string, params: readonly Tensor[]): Tensor[] {
  if (params.length === 0) throw new Error(`${op}: no parameters given`);
  const seen = new Set<Tensor>();
  for (const p of params) {
    if (!p.requiresGrad || p.node) {
      throw new Error(`${op}: parameters must be leaf tensors with requiresGrad, got ${p.describe()}`);
    }
    if (seen.has(p)) throw new Error(`${op}: ${p.describe()} is listed twice`);
    seen.add(p);
  }
  return [...params];
}

/** The parameter's gradient if it has one (checked), else null. */
function gradOf(op: string, p: Tensor): Tensor | null {
  const g = p.grad;
  if (!g) return null;
  if (g.shape.join() !== p.shape.join() || g.dtype !== 'f32') {
    throw new Error(`${op}: gradient ${g.describe()} does not match parameter ${p.describe()}`);
  }
  return g;
}

function checkNumber(op: string, name: string, v: number, ok: boolean): void {
  if (!Number.isFinite(v) || !ok) throw new Error(`${op}: invalid ${name} ${v}`);
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** L2 penalty added to the gradient (torch.optim.Adam's weight_decay, not AdamW). */
  weightDecay?: number;
}

export interface AdamParamState {
  /** Steps taken by this parameter (PyTorch's state['step']). */
  step: number;
  m: Float32Array;
  v: Float32Array;
}

export interface AdamState {
  stepCount: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** One entry per parameter, null for a parameter that has not taken a step yet. */
  params: (AdamParamState | null)[];
}

interface AdamSlot {
  step: number;
  m: Tensor;
  v: Tensor;
}

/**
 * torch.optim.Adam (amsgrad off): per parameter with gradient g and step t,
 *   g += weight_decay * p;  m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 */
export class Adam {
  readonly params: Tensor[];
  /** Settable between steps (learning-rate schedules). */
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Calls of step(). Each parameter's own step (bias correction) counts only steps it took. */
  stepCount = 0;
  private slots: (AdamSlot | null)[];

  constructor(params: readonly Tensor[], opts: AdamOptions = {}) {
    this.params = checkParams('Adam', params);
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    checkNumber('Adam', 'lr', this.lr, this.lr >= 0);
    checkNumber('Adam', 'eps', this.eps, this.eps >= 0);
    checkNumber('Adam', 'weightDecay', this.weightDecay, this.weightDecay >= 0);
    for (const b of this.betas) checkNumber('Adam', 'beta', b, b >= 0 && b < 1);
    this.slots = this.params.map(() => null);
  }

  /** Updates every parameter that has a gradient (one kernel each); skips the others. */
  step(): void {
    checkNumber('Adam', 'lr', this.lr, this.lr >= 0);
    const [b1, b2] = this.betas;
    this.stepCount++;
    this.params.forEach((p, i) => {
      const g = gradOf('Adam', p);
      if (!g) return;
      let s = this.slots[i];
      if (!s) s = this.slots[i] = { step: 0, m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) };
      s.step++;
      const stepSize = this.lr / (1 - b1 ** s.step);
      const bc2Sqrt = Math.sqrt(1 - b2 ** s.step);
      const u = ADAM_PARAMS.pack({
        n: p.size, one_minus_beta1: 1 - b1, beta2: b2, one_minus_beta2: 1 - b2, eps: this.eps, weight_decay: this.weightDecay, step_size: stepSize, bc2_sqrt: bc2Sqrt,
      });
      rt().dispatch(adamKernel, [p.buffer, g.buffer, s.m.buffer, s.v.buffer], u, grid1d(Math.ceil(p.size / 256)));
    });
  }

  /** Disposes and clears every parameter's gradient. */
  zeroGrad(): void {
    zeroGrad(this.params);
  }

  /** A copy of the optimiser's state for checkpoints. */
  async state(): Promise<AdamState> {
    const params: (AdamParamState | null)[] = [];
    for (const s of this.slots) {
      params.push(s ? { step: s.step, m: (await s.m.read()) as Float32Array, v: (await s.v.read()) as Float32Array } : null);
    }
    return { stepCount: this.stepCount, lr: this.lr, betas: [...this.betas], eps: this.eps, weightDecay: this.weightDecay, params };
  }

  /** Restores state() output (same parameter list and shapes). Hyperparameters other than lr stay as constructed. */
  loadState(state: AdamState): void {
    if (state.params.length !== this.params.length) {
      throw new Error(`Adam.loadState: state has ${state.params.length} parameters, optimiser has ${this.params.length}`);
    }
    state.params.forEach((s, i) => {
      const n = this.params[i].size;
      if (s && (s.m.length !== n || s.v.length !== n)) {
        throw new Error(`Adam.loadState: parameter ${i} has ${n} elements, state has ${s.m.length} and ${s.v.length}`);
      }
    });
    this.disposeState();
    this.slots = state.params.map((s, i) => {
      if (!s) return null;
      const shape = this.params[i].shape;
      return { step: s.step, m: keep(tensor(s.m, shape)), v: keep(tensor(s.v, shape)) };
    });
    this.stepCount = state.stepCount;
    this.lr = state.lr;
  }

  /** Releases the optimiser's state buffers. */
  dispose(): void {
    this.disposeState();
  }

  private disposeState(): void {
    for (const s of this.slots) {
      s?.m.dispose();
      s?.v.dispose();
    }
    this.slots = this.params.map(() => null);
  }
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export interface SgdState {
  stepCount: number;
  lr: number;
  /** Momentum buffers, null where none exists yet (or momentum is 0). */
  params: ({ momentumBuffer: Float32Array } | null)[];
}

/**
 * torch.optim.SGD: g += weight_decay * p; with momentum, buf = g on a parameter's first step,
 * else buf = momentum * buf + (1 - dampening) * g, and the direction is buf (or g + momentum *
 * buf with Nesterov); p -= lr * direction.
 */
export class SGD {
  readonly params: Tensor[];
  lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  stepCount = 0;
  private buffers: (Tensor | null)[];

  constructor(params: readonly Tensor[], opts: SgdOptions) {
    this.params = checkParams('SGD', params);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    checkNumber('SGD', 'lr', this.lr, this.lr >= 0);
    checkNumber('SGD', 'momentum', this.momentum, this.momentum >= 0);
    checkNumber('SGD', 'weightDecay', this.weightDecay, this.weightDecay >= 0);
    checkNumber('SGD', 'dampening', this.dampening, true);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening');
    }
    this.buffers = this.params.map(() => null);
  }

  step(): void {
    checkNumber('SGD', 'lr', this.lr, this.lr >= 0);
    this.stepCount++;
    this.params.forEach((p, i) => {
      const g = gradOf('SGD', p);
      if (!g) return;
      const grid = grid1d(Math.ceil(p.size / 256));
      if (this.momentum === 0) {
        rt().dispatch(sgdKernel, [p.buffer, g.buffer], SGD_PARAMS.pack({ n: p.size, lr: this.lr, weight_decay: this.weightDecay }), grid);
        return;
      }
      const first = !this.buffers[i];
      // the first step overwrites every element, so the buffer needs no zeroing
      const buf = (this.buffers[i] ??= keep(empty(p.shape)));
      const u = SGD_MOMENTUM_PARAMS.pack({
        n: p.size, lr: this.lr, weight_decay: this.weightDecay, momentum: this.momentum, one_minus_dampening: 1 - this.dampening, first, nesterov: this.nesterov,
      });
      rt().dispatch(sgdMomentumKernel, [p.buffer, g.buffer, buf.buffer], u, grid);
    });
  }

  zeroGrad(): void {
    zeroGrad(this.params);
  }

  async state(): Promise<SgdState> {
    const params: SgdState['params'] = [];
    for (const b of this.buffers) params.push(b ? { momentumBuffer: (await b.read()) as Float32Array } : null);
    return { stepCount: this.stepCount, lr: this.lr, params };
  }

  loadState(state: SgdState): void {
    if (state.params.length !== this.params.length) {
      throw new Error(`SGD.loadState: state has ${state.params.length} parameters, optimiser has ${this.params.length}`);
    }
    state.params.forEach((s, i) => {
      if (s && s.momentumBuffer.length !== this.params[i].size) {
        throw new Error(`SGD.loadState: parameter ${i} has ${this.params[i].size} elements, state has ${s.momentumBuffer.length}`);
      }
    });
    this.dispose();
    this.buffers = state.params.map((s, i) => (s ? keep(tensor(s.momentumBuffer, this.params[i].shape)) : null));
    this.stepCount = state.stepCount;
    this.lr = state.lr;
  }

  dispose(): void {
    for (const b of this.buffers) b?.dispose();
    this.buffers = this.params.map(() => null);
  }
}
