// Optimisers with PyTorch semantics (torch.optim.Adam, torch.optim.SGD): fused kernels
// (shaders/optim.wgsl) that update parameters and their state in place, Adam's for many
// parameters per dispatch (engine/adam_multi.ts; flag `fuse`), SGD's one per parameter.
// State tensors are created lazily on a parameter's first step, as PyTorch does.
import { adamGroupSize, adamGroups, adamMultiKernel, adamMultiLaunch } from './adam_multi.js';
import { zeroGrad } from './autograd.js';
import { flags } from './flags.js';
import { paramBlock, shaderKernel } from './kernel.js';
import { type Kernel, grid1d, rt } from './runtime.js';
import { type Tensor, empty, keep, tensor, zeros } from './tensor.js';

// What changes from step to step (the learning rate, Adam's bias corrections, SGD's first-step
// flags) is not in the parameter blocks but in a small per-step buffer the optimiser writes once
// per step (Runtime.writePerStep), so a recorded step (engine/recording.ts) replays with the
// new values; `index` says where a parameter's values sit.
/** stepScalars[2 index] = lr / (1 - beta1^t), [2 index + 1] = sqrt(1 - beta2^t), from the CPU in float64. */
const ADAM_PARAMS = paramBlock({
  n: 'u32', one_minus_beta1: 'f32', beta2: 'f32', one_minus_beta2: 'f32', eps: 'f32', weight_decay: 'f32', index: 'u32',
}, 1);
/** stepScalars[0] = lr. */
const SGD_PARAMS = paramBlock({ n: 'u32', weight_decay: 'f32' }, 1);
/** stepScalars[0] = lr, [1 + index] = 1 on the parameter's first step with momentum, else 0. */
const SGD_MOMENTUM_PARAMS = paramBlock({
  n: 'u32', weight_decay: 'f32', momentum: 'f32', one_minus_dampening: 'f32', nesterov: 'u32', index: 'u32',
}, 1);

const adamKernel = shaderKernel('optim', 'adam', {}, ADAM_PARAMS);

/**
 * Loss scaling's hold on Adam (engine/loss_scale.ts): the update unscales the gradient and
 * writes nothing on a step whose gradients held an inf or NaN, as read from `state` (bound
 * after the step scalars). `kernel` replaces the per-parameter adam kernel; the multi-tensor
 * kernel has a gated variant of its own.
 */
export interface AdamGate {
  kernel(params: typeof ADAM_PARAMS): Kernel;
  state: GPUBuffer;
}
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
  /** This step's two scalars per parameter (see ADAM_PARAMS), on the GPU and on the CPU. */
  private readonly stepScalars: Tensor;
  private readonly scalarValues: Float32Array;

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
    this.scalarValues = new Float32Array(2 * this.params.length);
    this.stepScalars = keep(empty([this.scalarValues.length]));
  }

  /**
   * Updates every parameter that has a gradient (with flag `fuse`, as many per dispatch as the
   * device binds; else one dispatch each); skips the others. Recorded (engine/recording.ts), a
   * replay takes the step with the lr set then.
   */
  step(gate?: AdamGate): void {
    checkNumber('Adam', 'lr', this.lr, this.lr >= 0);
    const [b1, b2] = this.betas;
    const stepped = this.params.flatMap((p, i) => (gradOf('Adam', p) ? [i] : []));
    const r = rt();
    // State starts at zero once, not on every replay.
    r.once(() => {
      for (const i of stepped) this.slots[i] ??= { step: 0, m: keep(zeros(this.params[i].shape)), v: keep(zeros(this.params[i].shape)) };
    });
    r.writePerStep(this.stepScalars.buffer, () => this.advance(stepped));
    const constants = { one_minus_beta1: 1 - b1, beta2: b2, one_minus_beta2: 1 - b2, eps: this.eps, weight_decay: this.weightDecay };
    const tail = [this.stepScalars.buffer, ...(gate ? [gate.state] : [])];
    if (flags().fuse) {
      const perDispatch = adamGroupSize(r.device.limits.maxStorageBuffersPerShaderStage, gate !== undefined);
      for (const group of adamGroups(stepped, perDispatch)) {
        const launch = adamMultiLaunch(group.map((i) => ({ n: this.params[i].size, index: i })), constants);
        const buffers = group.flatMap((i) => [this.params[i].buffer, this.params[i].grad!.buffer, this.slots[i]!.m.buffer, this.slots[i]!.v.buffer]);
        r.dispatch(adamMultiKernel(group.length, gate !== undefined), [...buffers, ...tail], launch.params, grid1d(launch.workgroups));
      }
      return;
    }
    for (const i of stepped) {
      const p = this.params[i];
      const s = this.slots[i]!;
      const u = ADAM_PARAMS.pack({ n: p.size, ...constants, index: i });
      const buffers = [p.buffer, p.grad!.buffer, s.m.buffer, s.v.buffer, ...tail];
      r.dispatch(gate ? gate.kernel(ADAM_PARAMS) : adamKernel, buffers, u, grid1d(Math.ceil(p.size / 256)));
    }
  }

  /** Counts a step of the parameters `stepped` and returns its scalars (once per step, replays included). */
  private advance(stepped: readonly number[]): Float32Array {
    checkNumber('Adam', 'lr', this.lr, this.lr >= 0);
    const [b1, b2] = this.betas;
    this.stepCount++;
    for (const i of stepped) {
      const s = this.slots[i]!;
      s.step++;
      this.scalarValues[2 * i] = this.lr / (1 - b1 ** s.step);
      this.scalarValues[2 * i + 1] = Math.sqrt(1 - b2 ** s.step);
    }
    return this.scalarValues;
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
    this.stepScalars.dispose();
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
  /** Whether each parameter's momentum buffer holds a step (its next step is not its first). */
  private started: boolean[];
  /** lr, then each parameter's first-step flag (see SGD_MOMENTUM_PARAMS), on the GPU and on the CPU. */
  private readonly stepScalars: Tensor;
  private readonly scalarValues: Float32Array;

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
    this.started = this.params.map(() => false);
    this.scalarValues = new Float32Array(1 + this.params.length);
    this.stepScalars = keep(empty([this.scalarValues.length]));
  }

  step(): void {
    checkNumber('SGD', 'lr', this.lr, this.lr >= 0);
    const stepped = this.params.flatMap((p, i) => (gradOf('SGD', p) ? [i] : []));
    const r = rt();
    r.writePerStep(this.stepScalars.buffer, () => this.advance(stepped));
    for (const i of stepped) {
      const p = this.params[i];
      const g = p.grad!;
      const grid = grid1d(Math.ceil(p.size / 256));
      if (this.momentum === 0) {
        r.dispatch(sgdKernel, [p.buffer, g.buffer, this.stepScalars.buffer], SGD_PARAMS.pack({ n: p.size, weight_decay: this.weightDecay }), grid);
        continue;
      }
      // the first step overwrites every element, so the buffer needs no zeroing
      const buf = (this.buffers[i] ??= keep(empty(p.shape)));
      const u = SGD_MOMENTUM_PARAMS.pack({
        n: p.size, weight_decay: this.weightDecay, momentum: this.momentum, one_minus_dampening: 1 - this.dampening, nesterov: this.nesterov, index: i,
      });
      r.dispatch(sgdMomentumKernel, [p.buffer, g.buffer, buf.buffer, this.stepScalars.buffer], u, grid);
    }
  }

  /** Counts a step of the parameters `stepped` and returns its scalars (once per step, replays included). */
  private advance(stepped: readonly number[]): Float32Array {
    checkNumber('SGD', 'lr', this.lr, this.lr >= 0);
    this.stepCount++;
    this.scalarValues[0] = this.lr;
    for (const i of stepped) {
      this.scalarValues[1 + i] = this.started[i] ? 0 : 1;
      if (this.momentum !== 0) this.started[i] = true;
    }
    return this.scalarValues;
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
    this.disposeBuffers();
    this.buffers = state.params.map((s, i) => (s ? keep(tensor(s.momentumBuffer, this.params[i].shape)) : null));
    this.started = state.params.map((s) => s !== null);
    this.stepCount = state.stepCount;
    this.lr = state.lr;
  }

  dispose(): void {
    this.disposeBuffers();
    this.stepScalars.dispose();
  }

  private disposeBuffers(): void {
    for (const b of this.buffers) b?.dispose();
    this.buffers = this.params.map(() => null);
    this.started = this.params.map(() => false);
  }
}
