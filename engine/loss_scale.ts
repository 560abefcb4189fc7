// Dynamic loss scaling for f16 training, with torch.cuda.amp.GradScaler's semantics: the loss
// is multiplied by a scale (2^16 at first) before backward so that small f16 gradients do not
// flush to zero; before the optimiser step the gradients are checked for inf/NaN and unscaled;
// a step with inf/NaN is skipped and the scale halved; after 2000 clean steps in a row it
// doubles. Everything runs on the GPU (shaders/loss_scale.wgsl): the scale, the found-inf flag
// and the bookkeeping live in a small state buffer, the unscale and the skip are inside Adam's
// update kernel, and the CPU reads the state only when asked (metrics, checkpoints), so a step
// records without a readback (and replays: no per-step values come from the CPU).
//
// One difference from PyTorch: the CPU does not know which steps were skipped, so Adam's bias
// correction counts them (after k skipped steps its t is k ahead of torch's). Skips are rare
// after the first steps, and the correction's effect fades as beta^t.
import { record } from './autograd.js';
import { paramBlock, shaderKernel } from './kernel.js';
import type { Adam, AdamGate } from './optim.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, assertDType, empty, keep, tensor } from './tensor.js';

export interface LossScalerOptions {
  /** Scaling on (default). Off, scaleLoss returns the loss and step is the optimiser's own step. */
  enabled?: boolean;
  /** First scale (default 2^16). Powers of two keep unscaling exact. */
  initScale?: number;
  /** Scale factor after growthInterval clean steps in a row (default 2). */
  growthFactor?: number;
  /** Scale factor after a step with inf/NaN gradients (default 0.5). */
  backoffFactor?: number;
  /** Clean steps in a row before the scale grows (default 2000). */
  growthInterval?: number;
}

/** The scaler's state as read back (metrics, checkpoints). */
export interface LossScaleState {
  scale: number;
  /** Clean steps since the scale last changed. */
  growthTracker: number;
  /** Steps skipped for inf/NaN gradients so far. */
  skippedSteps: number;
  /** Steps taken through step() (skipped ones included). */
  steps: number;
}

/** The state buffer's words, in the order of struct State in shaders/loss_scale.wgsl. */
const STATE_WORDS = 6;
const N_PARAMS = paramBlock({ n: 'u32' });
const UPDATE_PARAMS = paramBlock({ growth: 'f32', inv_growth: 'f32', backoff: 'f32', inv_backoff: 'f32', growth_interval: 'u32' });

const scaleKernel = shaderKernel('loss_scale', 'scale', {}, N_PARAMS);
const checkKernel = shaderKernel('loss_scale', 'check', {}, N_PARAMS);
const updateKernel = shaderKernel('loss_scale', 'update', {}, UPDATE_PARAMS);

function checkPositive(name: string, v: number, ok = true): void {
  if (!Number.isFinite(v) || v <= 0 || !ok) throw new Error(`LossScaler: invalid ${name} ${v}`);
}

export class LossScaler {
  readonly enabled: boolean;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  /** u32 [6]: scale (f32 bits), inverse scale (f32 bits), growth tracker, found-inf, skipped steps, steps. */
  private readonly state: Tensor;
  /** Adam's update with the unscale and the skip (see AdamGate in optim.ts). */
  private readonly gate: AdamGate;

  constructor(opts: LossScalerOptions = {}) {
    this.enabled = opts.enabled ?? true;
    const initScale = opts.initScale ?? 2 ** 16;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    checkPositive('initScale', initScale);
    checkPositive('growthFactor', this.growthFactor, this.growthFactor > 1);
    checkPositive('backoffFactor', this.backoffFactor, this.backoffFactor < 1);
    checkPositive('growthInterval', this.growthInterval, Number.isInteger(this.growthInterval));
    this.state = keep(tensor(stateWords({ scale: initScale, growthTracker: 0, skippedSteps: 0, steps: 0 }), [STATE_WORDS], 'u32'));
    const stateBuffer = this.state.buffer;
    this.gate = { kernel: (params) => shaderKernel('loss_scale', 'adam', {}, params), state: stateBuffer };
  }

  /**
   * The loss times the current scale (a new f32 tensor; its gradient is scaled too), to call
   * backward on. Disabled: the loss itself.
   */
  scaleLoss(loss: Tensor): Tensor {
    if (!this.enabled) return loss;
    assertDType('LossScaler.scaleLoss', 'f32', loss);
    return record(this.scaled(loss), 'scaleLoss', [loss], [], (g) => [this.scaled(g)]);
  }

  private scaled(x: Tensor): Tensor {
    const y = empty(x.shape);
    if (y.size > 0) rt().dispatch(scaleKernel, [x.buffer, y.buffer, this.state.buffer], N_PARAMS.pack({ n: x.size }), grid1d(Math.ceil(x.size / 256)));
    return y;
  }

  /**
   * The optimiser step of a scaled backward: checks every gradient for inf/NaN, then Adam
   * updates with the gradients unscaled, or leaves parameters and moments untouched when one
   * was found, then the scale is updated. Nothing is read back. Disabled: optimizer.step().
   */
  step(optimizer: Adam): void {
    if (!this.enabled) {
      optimizer.step();
      return;
    }
    for (const p of optimizer.params) {
      const g = p.grad;
      if (!g || g.size === 0) continue;
      assertDType('LossScaler.step', 'f32', g);
      rt().dispatch(checkKernel, [g.buffer, this.state.buffer], N_PARAMS.pack({ n: g.size }), grid1d(Math.ceil(g.size / 256)));
    }
    optimizer.step(this.gate);
    const u = UPDATE_PARAMS.pack({
      growth: this.growthFactor, inv_growth: 1 / this.growthFactor, backoff: this.backoffFactor, inv_backoff: 1 / this.backoffFactor, growth_interval: this.growthInterval,
    });
    rt().dispatch(updateKernel, [this.state.buffer], u, [1]);
  }

  /**
   * Reads the state back (one small readback: for metrics and checkpoints, not every step).
   * Disabled: scale 1 and no steps, as GradScaler reports, without a readback.
   */
  async read(): Promise<LossScaleState> {
    if (!this.enabled) return { scale: 1, growthTracker: 0, skippedSteps: 0, steps: 0 };
    const w = (await this.state.read()) as Uint32Array;
    const f = new Float32Array(w.buffer, w.byteOffset, 1);
    return { scale: f[0], growthTracker: w[2], skippedSteps: w[4], steps: w[5] };
  }

  /** Restores a state from read() (e.g. from a checkpoint). */
  loadState(s: LossScaleState): void {
    checkPositive('scale', s.scale);
    rt().overwrite(this.state.buffer, stateWords(s));
  }

  dispose(): void {
    this.state.dispose();
  }
}

/** The state buffer's words for `s` (found-inf clear). */
function stateWords(s: LossScaleState): Uint32Array {
  const w = new Uint32Array(STATE_WORDS);
  const f = new Float32Array(w.buffer);
  f[0] = s.scale;
  f[1] = 1 / s.scale;
  w[2] = s.growthTracker;
  w[3] = 0;
  w[4] = s.skippedSteps;
  w[5] = s.steps;
  return w;
}
