// Convolution benchmarks (the cases are in bench/conv_cases.ts, shared with the browser page).
// `benchCases` is this family's list for bench/run.ts (`npm run bench -- --filter conv`). It
// also runs alone, with the harness:
//   npx tsx bench/conv.ts [--quick] [--vs tfjs] [--batch 32,256] [--reps N] [filter...]
// --quick: batch 32 only and fewer repetitions; filters match substrings of case names.
import * as C from '../engine/conv.js';
import { init } from '../engine/node.js';
import { convCases } from './conv_cases.js';
import { type BenchCase, type BenchEntry, formatPlans, formatTable, runCase } from './harness.js';
import type { Tf } from './tfjs_common.js';

export { SEED_LAYERS, convCases } from './conv_cases.js';

export const benchCases: BenchCase[] = convCases();

// ---- Standalone entry (the same harness as bench/run.ts)

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (f: string) => {
    const i = args.indexOf(f);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const quick = args.includes('--quick');
  const vs = opt('--vs');
  const batches = (opt('--batch') ?? (quick ? '32' : '32,256')).split(',').map(Number);
  const reps = opt('--reps') !== undefined ? Number(opt('--reps')) : undefined;
  const values = new Set([vs, opt('--batch'), opt('--reps')]);
  const filters = args.filter((a) => !a.startsWith('--') && !values.has(a));
  const cases = convCases(batches).filter((c) => !filters.length || filters.some((f) => c.name.includes(f)));
  const r = await init();
  console.log(`adapter: ${r.caps.description}; conv schedule ${C.convSchedule()}`);
  let tfjs: typeof import('./tfjs.js') | null = null;
  let tf: Tf | null = null;
  if (vs === 'tfjs') {
    tfjs = await import('./tfjs.js');
    tf = await tfjs.loadTfjs();
  }
  const entries: BenchEntry[] = [];
  for (const c of cases) {
    process.stderr.write(`  ${c.name} ...\n`);
    entries.push(await runCase(c, { reps, quick, tf, timeTfjs: tfjs?.timeTfjs }));
  }
  console.log(formatTable(entries));
  const plans = formatPlans(entries);
  if (plans) console.log(`\n${plans}`);
  if (vs) console.log('\nspeedup = tfjs wall ms / our wall ms (both: record the work, submit, wait for the GPU).');
  if (args.includes('--json')) console.log(JSON.stringify(entries));
}

if (process.argv[1]?.endsWith('bench/conv.ts')) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
