// `npm run bench [-- options]`: times the registered cases and prints a table.
//   --filter REGEX   only cases whose name (or family) matches
//   --reps N         repetitions per case (default: the case's, 10 unless it asks for fewer)
//   --warmup N       warm-up runs per case
//   --quick          fewer repetitions
//   --steps N        back-to-back runs per wall sample of the cases timed that way (train_step)
//   --vs tfjs        also time the same work in tfjs-webgpu (same Dawn adapter, same process)
//   --interleave     time the cases round-robin (one repetition of each per round) instead of
//                    one after another: fair comparisons on a device whose speed drifts
//   --json FILE      write the entries as a JSON array
//   --list           list the cases (with each one's kernel plan on this device) and exit
//   -h, --help       this text
// Environment: VQ_MATMUL_SCHEDULE=reg|smem (and VQ_MATMUL_TILE=RxC) pick matmul variants.
import { writeFileSync } from 'node:fs';
import { init } from '../engine/node.js';
import { gemmTile, gemmTileKey } from '../engine/matmul.js';
import { type BenchCase, type BenchEntry, casePlan, formatPlans, formatTable, formatWgradVsForward, runCase, runInterleaved } from './harness.js';
import { relaunchWithoutDawnNoise } from '../scripts/cli.js';

function help(): string {
  return [
    'Usage: npm run bench -- [options]',
    '',
    'Times the registered kernel and training-step cases on the WebGPU device and prints a table.',
    '',
    'Options:',
    '  --filter REGEX   only cases whose name (or family) matches',
    '  --reps N         repetitions per case (default: the case\'s, 10 unless it asks for fewer)',
    '  --warmup N       warm-up runs per case',
    '  --quick          fewer repetitions',
    '  --steps N        back-to-back runs per wall sample of the cases timed that way',
    '                   (training steps: one sync after N steps; default 20 on a GPU, 2 on a CPU)',
    '  --vs tfjs        also time the same work in tfjs-webgpu (same Dawn adapter, same process)',
    '  --interleave     time the cases round-robin (one repetition of each per round): fair',
    '                   comparisons on a device whose speed drifts',
    '  --json FILE      write the entries as a JSON array',
    '  --list           list the cases (with each one\'s kernel plan on this device) and exit',
    '  -h, --help       this text',
    '',
    'Environment: VQ_MATMUL_SCHEDULE=reg|smem (and VQ_MATMUL_TILE=RxC) pick matmul variants.',
  ].join('\n');
}

// Modules exporting `benchCases`; add a line per family.
const MODULES = ['./matmul.js', './conv.js', './vq.js', './train_step.js', './replay_step.js', './train_loop.js'];

interface Args {
  filter: RegExp | null;
  reps?: number;
  warmup?: number;
  steps?: number;
  quick: boolean;
  interleave: boolean;
  vs: string | null;
  json: string | null;
  list: boolean;
  help: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { filter: null, quick: false, interleave: false, vs: null, json: null, list: false, help: false };
  const value = (i: number, flag: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`bench: ${flag} needs a value`);
    return v;
  };
  const count = (v: string, flag: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`bench: ${flag} needs a non-negative integer, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '--filter': a.filter = new RegExp(value(i++, arg)); break;
      case '--reps': a.reps = Math.max(1, count(value(i++, arg), arg)); break;
      case '--warmup': a.warmup = count(value(i++, arg), arg); break;
      case '--quick': a.quick = true; break;
      case '--steps': a.steps = Math.max(1, count(value(i++, arg), arg)); break;
      case '--interleave': a.interleave = true; break;
      case '--vs': a.vs = value(i++, arg); break;
      case '--json': a.json = value(i++, arg); break;
      case '--list': a.list = true; break;
      case '-h': case '--help': a.help = true; break;
      default: throw new Error(`bench: unknown argument '${arg}' (see --help)`);
    }
  }
  if (a.vs !== null && a.vs !== 'tfjs') throw new Error(`bench: --vs supports only 'tfjs', got '${a.vs}'`);
  return a;
}

async function loadCases(): Promise<BenchCase[]> {
  const cases: BenchCase[] = [];
  for (const m of MODULES) {
    try {
      const mod = (await import(m)) as { benchCases?: BenchCase[] };
      if (!Array.isArray(mod.benchCases)) throw new Error('it exports no benchCases array');
      cases.push(...mod.benchCases);
    } catch (e) {
      console.error(`bench: skipping ${m}: ${(e as Error).message}`);
    }
  }
  return cases;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(help());
    return;
  }
  const all = await loadCases();
  const cases = args.filter ? all.filter((c) => args.filter!.test(c.name) || args.filter!.test(c.family)) : all;
  if (!args.list && cases.length === 0) throw new Error(`bench: no case matches ${args.filter}`);

  const relaunched = await relaunchWithoutDawnNoise();
  if (relaunched !== null) process.exit(relaunched);
  if (args.list) {
    // Plans need the device's capabilities: without a device, the names alone.
    const r = await init().catch((e: Error) => {
      console.error(`bench: no device (${e.message}): listing the cases without their plans`);
      return null;
    });
    if (r) console.log(`plans for: ${r.caps.description}`);
    const listed = args.filter ? cases : all;
    const width = Math.max(...listed.map((c) => c.name.length));
    for (const c of listed) {
      const plan = r ? casePlan(c) : undefined;
      console.log(`${c.family.padEnd(18)} ${plan === undefined ? c.name : `${c.name.padEnd(width)}  ${plan}`}`);
    }
    return;
  }
  const r = await init();
  for (const c of [...cases]) {
    const why = c.unavailable?.(r.caps);
    if (!why) continue;
    console.error(`bench: skipping ${c.name}: ${why}`);
    cases.splice(cases.indexOf(c), 1);
  }
  const tile = gemmTile();
  console.log(`adapter: ${r.caps.description} (${r.caps.isCpu ? 'CPU' : 'GPU'} device)`);
  console.log(`matmul schedule: ${tile.schedule} (${gemmTileKey(tile)})`);
  console.log(`timing: ${r.caps.timestampQuery ? 'GPU timestamp queries (unquantised)' : 'wall clock (no timestamp-query)'}`);
  let tfjs: typeof import('./tfjs.js') | null = null;
  let tf: import('./tfjs.js').Tf | null = null;
  if (args.vs === 'tfjs') {
    tfjs = await import('./tfjs.js');
    tf = await tfjs.loadTfjs();
    console.log(`vs: tfjs-webgpu ${tf.version_core} on the same Dawn adapter (wall clock, run + sync)`);
  }
  console.log('');

  const opts = { reps: args.reps, warmup: args.warmup, steps: args.steps, quick: args.quick, tf, timeTfjs: tfjs?.timeTfjs };
  let entries: BenchEntry[] = [];
  if (args.interleave) {
    entries = await runInterleaved(cases, opts, (msg) => process.stderr.write(`${msg}\n`));
  } else {
    for (const c of cases) {
      process.stderr.write(`  ${c.name} ...\n`);
      entries.push(await runCase(c, opts));
    }
  }
  console.log(formatTable(entries));
  const plans = formatPlans(entries);
  if (plans) console.log(`\n${plans}`);
  const perFlop = formatWgradVsForward(entries, args.interleave);
  if (perFlop) console.log(`\n${perFlop}`);
  if (args.vs) console.log('\nspeedup = tfjs wall ms / our wall ms (both: record the work, submit, wait for the GPU).');
  if (args.json) {
    writeFileSync(args.json, JSON.stringify(entries, null, 2) + '\n');
    console.log(`wrote ${entries.length} entries to ${args.json}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
