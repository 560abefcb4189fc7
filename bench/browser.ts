// `npm run bench:browser [-- options]`: our engine against tfjs-webgpu in one headless Chromium
// page (WebGPU on SwiftShader there), on bench/browser_cases.ts: the quick model's training
// step at batch 8, the seed model's conv layers and the VQ cases. Bundles bench/browser_page.ts
// (checked free of Node-only code), serves it on 127.0.0.1 and runs it with scripts/browser.ts.
//   --filter REGEX   only cases whose name (or family) matches
//   --batch N        batch of the conv layer cases (default 32, as the Node bench's)
//   --reps N         repetitions per case (default: the Node bench's --quick counts)
//   --warmup N       warm-up runs per case
//   --full           each case's own repetitions (as `npm run bench` without --quick)
//   --json FILE      write the entries as a JSON array (the Node bench's format)
//   --list           list the cases and exit
// VQ_* environment variables set the page's engine switches, as they do for `npm run bench`.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assertBrowserClean, bundleForBrowser, launchChromium, runInPage, serveStatic } from '../scripts/browser.js';
import { browserCases, STEP_CASE } from './browser_cases.js';
import type { PageOptions, PageReport } from './browser_page.js';
import { type BenchEntry, formatPlans, formatTable } from './harness.js';

const PAGE = '<!doctype html><meta charset="utf-8"><title>vqvae-webgpu browser bench</title><link rel="icon" href="data:,"><p>the bench runs from bench/browser.ts</p>';
/** Time limit for the whole page run: a hung case must not hold the machine forever. */
const PAGE_TIMEOUT_MS = 40 * 60_000;
/** The issue's goals: speedup over tfjs-webgpu per case, and for the training step. */
const GOAL_CASE = 3;
const GOAL_STEP = 10;

interface Args {
  opts: PageOptions;
  json: string | null;
  list: boolean;
}

function parseArgs(argv: string[]): Args {
  // Quick repetition counts by default: a CPU device in a page runs these cases slowly, and the
  // whole run should stay within minutes on a 2-core machine.
  const a: Args = { opts: { filter: null, convBatch: 32, quick: true, flags: {} }, json: null, list: false };
  const value = (i: number, flag: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`bench:browser: ${flag} needs a value`);
    return v;
  };
  const count = (v: string, flag: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`bench:browser: ${flag} needs an integer >= ${min}, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '--filter': a.opts.filter = new RegExp(value(i++, arg)).source; break;
      case '--batch': a.opts.convBatch = count(value(i++, arg), arg, 1); break;
      case '--reps': a.opts.reps = count(value(i++, arg), arg, 1); break;
      case '--warmup': a.opts.warmup = count(value(i++, arg), arg, 0); break;
      case '--full': a.opts.quick = false; break;
      case '--json': a.json = value(i++, arg); break;
      case '--list': a.list = true; break;
      default: throw new Error(`bench:browser: unknown argument '${arg}' (see the top of bench/browser.ts)`);
    }
  }
  // The page has no environment: the engine switches travel as arguments.
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('VQ_') && v !== undefined) a.opts.flags[k] = v;
  return a;
}

const f = (x: number | null | undefined, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');

/** case, our wall ms, our GPU ms, tfjs wall ms, speedup (of wall clocks) and the goal it is held to. */
function formatGoals(entries: BenchEntry[]): string {
  const head = ['case', 'ours ms (wall)', 'ours ms (GPU)', 'tfjs ms (wall)', 'speedup', 'goal'];
  const rows = entries.map((e) => {
    const goal = e.name === STEP_CASE ? GOAL_STEP : GOAL_CASE;
    const met = e.vs ? (e.vs.speedup >= goal ? 'met' : 'MISSED') : 'no tfjs case';
    return [e.name, f(e.wall_ms), e.timing === 'gpu' ? f(e.median_ms) : '-', f(e.vs?.median_ms), e.vs ? `${f(e.vs.speedup)}x` : '-', `${goal}x ${met}`];
  });
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(head), line(width.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    for (const c of browserCases(args.opts.convBatch)) console.log(`${c.family.padEnd(18)} ${c.name}`);
    return;
  }
  // tfjs-core's Node platform and seedrandom require Node's util and crypto behind checks that
  // are false in a page; stubbing them keeps the bundle checkable for Node-only code.
  const { js } = await bundleForBrowser(fileURLToPath(new URL('./browser_page.ts', import.meta.url)), { stub: ['crypto', 'util'] });
  assertBrowserClean(js);
  // Cross-origin isolation: without it Chromium coarsens performance.now() to 0.1 ms.
  const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
  const server = await serveStatic(new Map([['index.html', PAGE], ['page.js', js]]), { headers: isolation });
  let report: PageReport;
  try {
    const browser = await launchChromium();
    try {
      report = await runInPage<PageReport>(browser, { url: server.url, module: './page.js', fn: 'run', args: [args.opts], timeoutMs: PAGE_TIMEOUT_MS, prefix: '[page]' });
    } finally {
      await browser.close();
    }
  } finally {
    await server.close();
  }

  const c = report.caps;
  console.log(`adapter (ours): ${report.adapter} (${c.isCpu ? 'CPU' : 'GPU'} device); subgroups ${c.subgroups ? `${c.subgroupMinSize}-${c.subgroupMaxSize}` : 'none'}, shader-f16 ${c.shaderF16}, timestamp-query ${c.timestampQuery}`);
  console.log(`schedules (ours): conv ${report.schedules.conv}, matmul ${report.schedules.matmul}, vq ${report.schedules.vq}`);
  console.log(`vs: tfjs-webgpu ${report.tfjs.version} in the same page, its own device on ${report.tfjs.adapter} (wall clock, run + sync)`);
  console.log(`timing: ${c.timestampQuery ? 'ours also by GPU timestamp queries (Runtime.timeGpu)' : 'wall clock only (no timestamp-query)'}; wall clock (performance.now(), page ${report.isolated ? '' : 'not '}cross-origin isolated) of run + sync for both; speedup = tfjs wall ms / our wall ms`);
  console.log('');
  console.log(formatTable(report.entries));
  const plans = formatPlans(report.entries);
  if (plans) console.log(`\n${plans}`);
  console.log('');
  console.log(formatGoals(report.entries));
  for (const e of report.errors) console.log(`FAILED ${e.name}: ${e.message}`);
  if (args.json) {
    writeFileSync(args.json, JSON.stringify(report.entries, null, 2) + '\n');
    console.log(`wrote ${report.entries.length} entries to ${args.json}`);
  }
  console.log(`bench:browser took ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (report.errors.length) process.exitCode = 1;
}

main().then(
  () => process.exit(),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
