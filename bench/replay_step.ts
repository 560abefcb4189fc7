// Recorded training steps (engine/recording.ts): the step of bench/train_step.ts (seed model at
// batch 32 and 256, the quick preset's model at batch 8), recorded once in setup and replayed
// by each run, so the harness's wall time lacks the JavaScript work of recording the commands.
//
// `npx tsx bench/replay_step.ts [--reps N] [--filter RE]` measures what the harness has no
// field for: the host (JavaScript) milliseconds of one step, eager and replayed, timed with
// performance.now() around the CPU work only (the GPU idle before, waited for after), with the
// GPU time (timeGpu) and the dispatches and submits of each. On a CPU device the GPU's work
// runs on the same cores as the JavaScript, so an eager step that submits its first batches
// mid-step is slowed by them: the eager host time is also taken with one submit at the end
// ("eager, one submit"), which is the JavaScript work alone.
import { backward } from '../engine/autograd.js';
import { LossScaler } from '../engine/loss_scale.js';
import { Adam } from '../engine/optim.js';
import { type Recording, recordStep } from '../engine/recording.js';
import { rt } from '../engine/runtime.js';
import { type Tensor, keep, tensor, tidy } from '../engine/tensor.js';
import { type VqVaeConfig, resolveConfig } from '../model/config.js';
import { paramSpecs } from '../model/params.js';
import { type Precision, VqVae } from '../model/vqvae.js';
import { syntheticFaces } from '../train/data/synthetic.js';
import type { BenchCase } from './harness.js';
import { stepFlops } from './train_step.js';

interface StepSetup {
  model: VqVae;
  opt: Adam;
  x: Tensor;
  /** One training step (forward, backward, Adam, zeroGrad); returns the loss. */
  step: () => Tensor;
  dispose: () => void;
}

/** The step as the trainer takes it; f16 with dynamic loss scaling (train/step.ts). */
function setupStep(partial: Partial<VqVaeConfig>, B: number, precision: Precision = 'f32'): StepSetup {
  const model = new VqVae(resolveConfig(partial), { seed: 1 });
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = keep(tensor(syntheticFaces(B, 0), [B, 3, 64, 64]));
  const scaler = precision === 'f16' ? new LossScaler() : null;
  const step = () => {
    const loss = tidy(() => {
      const o = model.forward(x, { train: true, precision });
      backward(scaler ? scaler.scaleLoss(o.loss) : o.loss);
      return o.loss;
    });
    if (scaler) scaler.step(opt);
    else opt.step();
    opt.zeroGrad();
    return loss;
  };
  return {
    model,
    opt,
    x,
    step,
    dispose: () => {
      x.dispose();
      scaler?.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

function replayCase(label: string, partial: Partial<VqVaeConfig>, B: number, reps: number, precision: Precision = 'f32'): BenchCase {
  const cfg = resolveConfig(partial);
  const params = paramSpecs(cfg).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return {
    name: `replay_step.${label}${precision === 'f16' ? '.f16' : ''}.b${B}`,
    family: 'replay_step',
    params: { model: label, batch: B, hidden: cfg.hidden, K: cfg.codebookSize, D: cfg.embeddingDim, precision },
    unavailable: (caps) => (precision === 'f16' && !caps.shaderF16 ? 'the device has no shader-f16' : null),
    flops: stepFlops(cfg, B),
    bytes: params * 4 * 6 + B * 3 * 64 * 64 * 4,
    reps,
    warmup: 1,
    backToBack: { gpu: 20, cpu: 2 },
    images: B,
    setup: () => {
      const s = setupStep(partial, B, precision);
      s.step().dispose(); // Adam's state exists before recording, as in a run's later steps
      const rec = recordStep(s.step);
      return {
        run: () => void rec.replay(),
        dispose: () => {
          rec.dispose();
          s.dispose();
        },
      };
    },
  };
}

export const benchCases: BenchCase[] = [
  replayCase('seed', {}, 32, 3),
  replayCase('seed', {}, 256, 2),
  replayCase('seed', {}, 32, 3, 'f16'),
  replayCase('seed', {}, 256, 2, 'f16'),
  replayCase('quick', { hidden: 64, residualHidden: 32 }, 8, 5),
];

export interface HostTimes {
  name: string;
  /** Median and fastest host ms of one step's CPU work (the fastest: least disturbed by other processes). */
  eagerHostMs: number;
  /** The eager step's median host ms with every dispatch in one submit at its end. */
  eagerOneSubmitHostMs: number;
  replayHostMs: number;
  eagerHostMinMs: number;
  replayHostMinMs: number;
  /** GPU ms of one step (timeGpu), null without timestamp queries. */
  eagerGpuMs: number | null;
  replayGpuMs: number | null;
  eagerDispatches: number;
  replayDispatches: number;
  eagerSubmits: number;
  replaySubmits: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** Host and GPU time of `reps` eager steps and `reps` replays of the same step. */
export async function hostTimes(name: string, partial: Partial<VqVaeConfig>, B: number, reps: number): Promise<HostTimes> {
  const r = rt();
  const s = setupStep(partial, B);
  s.step().dispose(); // compiles the kernels and makes Adam's state
  await r.sync();
  const timeSteps = async (run: () => void) => {
    const host: number[] = [];
    const d0 = r.dispatchCount;
    const s0 = r.submitCount;
    for (let i = 0; i < reps; i++) {
      await r.sync();
      const t0 = performance.now();
      run();
      r.flush();
      host.push(performance.now() - t0);
    }
    await r.sync();
    const dispatches = (r.dispatchCount - d0) / reps;
    const submits = (r.submitCount - s0) / reps;
    const gpu = await r.timeGpu(run);
    return { host: median(host), hostMin: Math.min(...host), dispatches, submits, gpu };
  };
  const eager = await timeSteps(() => s.step().dispose());
  const perBatch = r.maxDispatchesPerBatch;
  r.maxDispatchesPerBatch = Number.MAX_SAFE_INTEGER;
  const eagerOneSubmit = await timeSteps(() => s.step().dispose());
  r.maxDispatchesPerBatch = perBatch;
  const rec: Recording<Tensor> = recordStep(s.step);
  await r.sync();
  const replay = await timeSteps(() => void rec.replay());
  rec.dispose();
  s.dispose();
  return {
    name,
    eagerHostMs: eager.host,
    replayHostMs: replay.host,
    eagerHostMinMs: eager.hostMin,
    eagerOneSubmitHostMs: eagerOneSubmit.host,
    replayHostMinMs: replay.hostMin,
    eagerGpuMs: eager.gpu,
    replayGpuMs: replay.gpu,
    eagerDispatches: eager.dispatches,
    replayDispatches: replay.dispatches,
    eagerSubmits: eager.submits,
    replaySubmits: replay.submits,
  };
}

if (process.argv[1]?.endsWith('bench/replay_step.ts')) {
  const { init } = await import('../engine/node.js');
  const args = process.argv.slice(2);
  const at = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  const reps = Number(at('--reps') ?? 5);
  const filter = new RegExp(at('--filter') ?? '.');
  await init();
  const cases: [string, Partial<VqVaeConfig>, number][] = [
    ['seed.b32', {}, 32],
    ['seed.b256', {}, 256],
    ['quick.b8', { hidden: 64, residualHidden: 32 }, 8],
  ];
  const ms = (v: number | null) => (v === null ? '-' : v.toFixed(2));
  console.log('case        host ms eager  replay  (fastest eager  replay)  eager, one submit   GPU ms eager  replay   dispatches eager/replay  submits eager/replay');
  for (const [name, partial, B] of cases) {
    if (!filter.test(name)) continue;
    const h = await hostTimes(name, partial, B, reps);
    console.log(
      `${name.padEnd(12)}${ms(h.eagerHostMs).padStart(13)}${ms(h.replayHostMs).padStart(8)}${ms(h.eagerHostMinMs).padStart(16)}${ms(h.replayHostMinMs).padStart(8)}${ms(h.eagerOneSubmitHostMs).padStart(19)}` +
        `${ms(h.eagerGpuMs).padStart(15)}${ms(h.replayGpuMs).padStart(9)}` +
        `${`${h.eagerDispatches}/${h.replayDispatches}`.padStart(25)}${`${h.eagerSubmits}/${h.replaySubmits}`.padStart(22)}`,
    );
  }
}
