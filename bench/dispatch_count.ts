// Dispatches of one training step by kernel (the seed model by default): the count that a
// recorded step replays, each costing host time in Dawn's calls and a launch on a real GPU.
//
// `npx tsx bench/dispatch_count.ts [--batch 32] [--quick] [--precision f16]` prints kernel,
// count, most first. The step is the trainer's (train/step.ts; f16 with its loss scaler).
import { LossScaler } from '../engine/loss_scale.js';
import { Adam } from '../engine/optim.js';
import { type Kernel, rt } from '../engine/runtime.js';
import { keep, tensor } from '../engine/tensor.js';
import { type Precision, VqVae } from '../model/vqvae.js';
import { syntheticFaces } from '../train/data/synthetic.js';
import { stepGradients, stepOptimizer } from '../train/step.js';

/** Kernel name -> dispatches of one step of `model` at batch `batch` (after a first step). */
export async function stepDispatches(partial: ConstructorParameters<typeof VqVae>[0], batch: number, precision: Precision = 'f32'): Promise<Map<string, number>> {
  const r = rt();
  const model = new VqVae(partial, { seed: 1 });
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = keep(tensor(syntheticFaces(batch, 0), [batch, 3, 64, 64]));
  const scaler = precision === 'f16' ? new LossScaler() : null;
  const step = () => {
    stepGradients(model, x, batch, () => {}, { precision, scaler });
    stepOptimizer(opt, scaler);
  };
  step();
  await r.sync();
  const counts = new Map<string, number>();
  const dispatch = r.dispatch.bind(r);
  r.dispatch = (k: Kernel, ...rest: Parameters<typeof dispatch> extends [Kernel, ...infer R] ? R : never) => {
    counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
    dispatch(k, ...rest);
  };
  step();
  r.dispatch = dispatch;
  await r.sync();
  x.dispose();
  scaler?.dispose();
  opt.dispose();
  model.dispose();
  return counts;
}

if (process.argv[1]?.endsWith('bench/dispatch_count.ts')) {
  const { init } = await import('../engine/node.js');
  const args = process.argv.slice(2);
  const at = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  await init();
  const precision = (at('--precision') ?? 'f32') as Precision;
  if (precision !== 'f32' && precision !== 'f16') throw new Error(`--precision must be f32 or f16, got ${precision}`);
  const counts = await stepDispatches(args.includes('--quick') ? { hidden: 64, residualHidden: 32 } : {}, Number(at('--batch') ?? 32), precision);
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  for (const [k, n] of rows) console.log(`${k.padEnd(32)}${String(n).padStart(5)}`);
  console.log(`${'total'.padEnd(32)}${String(rows.reduce((s, [, n]) => s + n, 0)).padStart(5)}`);
}
