// What the autotuner (engine/autotune.ts) picks for the seed model, and how long tuning takes:
// one forward + backward of the seed model's conv stack (bench/conv_cases.ts) and the seed's
// codebook search (z [B * 256, 64] against K = 512) run with the rule-based plans, every shape
// met is tuned, and a table lists each shape's rule-based plan and choice with their GPU times.
//   npx tsx bench/autotune.ts [--batch 32] [--reps 3] [--json]
// Choices are kept in memory only (the per-adapter file is not read or written).
import { Rng, autotune, init, memoryTuneStore, nearestCode, setTuneStore, tensor, withFlags } from '../engine/node.js';
import { CONV_PASS_TUNING, CONV_WGRAD_TUNING, bucketSize } from '../engine/node.js';
import * as C from '../engine/conv.js';
import { forwardConvPass, transposedPasses, wgradPass } from '../engine/conv/geometry.js';
import { SEED_LAYERS, convCases } from './conv_cases.js';

const REPS = 7;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Bench-case names (conv.enc1.dgrad.p2: phase 2 of a transposed pass) by tuning shape. */
function layerNames(B: number): Map<string, string> {
  const names = new Map<string, string>();
  const add = (shape: string, name: string) => names.set(shape, names.has(shape) ? `${names.get(shape)}, ${name}` : name);
  for (const l of SEED_LAYERS) {
    const xs = [B, l.CI, l.H, l.H];
    const ws = l.transposed ? [l.CI, l.CO, l.K, l.K] : [l.CO, l.CI, l.K, l.K];
    const o = { stride: l.stride, padding: l.pad };
    const g = l.transposed ? C.convTranspose2dGeometry(xs, ws, o) : C.conv2dGeometry(xs, ws, o);
    const weightBytes = bucketSize(4 * ws.reduce((a, b) => a * b));
    const name = `${l.transposed ? 'convT' : 'conv'}.${l.name}`;
    const fwd = l.transposed ? transposedPasses(g) : [forwardConvPass(g)];
    const dgrad = l.transposed ? [forwardConvPass(g)] : transposedPasses(g);
    fwd.forEach((pass, i) => add(CONV_PASS_TUNING.shape({ pass, weightBytes }), `${name}.fwd${fwd.length > 1 ? `.p${i}` : ''}`));
    dgrad.forEach((pass, i) => add(CONV_PASS_TUNING.shape({ pass, weightBytes }), `${name}.dgrad${dgrad.length > 1 ? `.p${i}` : ''}`));
    add(CONV_WGRAD_TUNING.shape(wgradPass(g)), `${name}.wgrad`);
  }
  return names;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf('--batch');
  const B = i >= 0 ? Number(args[i + 1]) : 32;
  const j = args.indexOf('--reps');
  const reps = j >= 0 ? Number(args[j + 1]) : undefined;
  const r = await init();
  setTuneStore(memoryTuneStore());
  const model = convCases([B]).find((c) => c.name === `conv.model.fwdbwd.b${B}`)!;
  const work = await model.setup();
  const z = tensor(new Rng(1).uniformArray(B * 256 * 64, -1, 1), [B * 256, 64]);
  const e = tensor(new Rng(2).uniformArray(512 * 64, -1, 1), [512, 64]);
  const t0 = performance.now();
  const results = await autotune(() => {
    work.run();
    nearestCode(z, e).indices.dispose();
  }, { reps, log: (line) => process.stderr.write(`  ${line}\n`) });
  const wall = (performance.now() - t0) / 1000;
  // The whole step with the rule-based plans and with the choices, alternating (so load from
  // other processes falls on both alike): GPU time, median of REPS each.
  const step = { rule: [] as number[], tuned: [] as number[] };
  for (let k = 0; k < REPS; k++) {
    step.rule.push((await withFlags({ autotune: 'off' }, () => r.timeGpu(work.run)))!);
    step.tuned.push((await withFlags({ autotune: 'cached' }, () => r.timeGpu(work.run)))!);
  }
  work.dispose();
  z.dispose();
  e.dispose();
  console.log(`adapter: ${r.caps.description}; batch ${B}; ${results.length} shapes tuned in ${wall.toFixed(1)} s (wall clock, compiles included)\n`);
  const names = layerNames(B);
  console.log('| shape | rule-based plan | ms | chosen plan | ms | candidates |');
  console.log('| --- | --- | ---: | --- | ---: | ---: |');
  let rule = 0;
  let chosen = 0;
  for (const x of results) {
    const shape = x.key.split(' f32 ')[0];
    const label = names.get(shape.slice(shape.indexOf(' ') + 1)) ?? shape;
    rule += x.defaultMs;
    chosen += x.chosenMs;
    const same = x.chosenId === x.defaultId;
    console.log(`| ${label} | ${x.defaultId} | ${x.defaultMs.toFixed(2)} | ${same ? '(same)' : x.chosenId} | ${x.chosenMs.toFixed(2)} | ${x.times.length} |`);
  }
  console.log(`\nsum over shapes: rule-based ${rule.toFixed(1)} ms, tuned ${chosen.toFixed(1)} ms (GPU timestamps, median of ${reps ?? 3} rounds after a warm-up)`);
  console.log(`${model.name}: rule-based ${median(step.rule).toFixed(1)} ms, tuned ${median(step.tuned).toFixed(1)} ms (GPU timestamps, alternating, median of ${REPS})`);
  if (args.includes('--json')) console.log(JSON.stringify(results));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
