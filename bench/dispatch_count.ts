// Dispatches of one training step by kernel (the seed model by default): the count that a
// recorded step replays, each costing host time in Dawn's calls and a launch on a real GPU.
//
// `npx tsx bench/dispatch_count.ts [--batch 32] [--quick]` prints kernel, count, most first.
import { backward } from '../engine/autograd.js';
import { Adam } from '../engine/optim.js';
import { type Kernel, rt } from '../engine/runtime.js';
import { keep, tensor, tidy } from '../engine/tensor.js';
import { VqVae } from '../model/vqvae.js';
import { syntheticFaces } from '../train/data/synthetic.js';

/** Kernel name -> dispatches of one step of `model` at batch `batch` (after a first step). */
export async function stepDispatches(partial: ConstructorParameters<typeof VqVae>[0], batch: number): Promise<Map<string, number>> {
  const r = rt();
  const model = new VqVae(partial, { seed: 1 });
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = keep(tensor(syntheticFaces(batch, 0), [batch, 3, 64, 64]));
  const step = () => {
    tidy(() => {
      const o = model.forward(x, { train: true });
      backward(o.loss);
    });
    opt.step();
    opt.zeroGrad();
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
  opt.dispose();
  model.dispose();
  return counts;
}

if (process.argv[1]?.endsWith('bench/dispatch_count.ts')) {
  const { init } = await import('../engine/node.js');
  const args = process.argv.slice(2);
  const at = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  await init();
  const counts = await stepDispatches(args.includes('--quick') ? { hidden: 64, residualHidden: 32 } : {}, Number(at('--batch') ?? 32));
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  for (const [k, n] of rows) console.log(`${k.padEnd(32)}${String(n).padStart(5)}`);
  console.log(`${'total'.padEnd(32)}${String(rows.reduce((s, [, n]) => s + n, 0)).padStart(5)}`);
}
