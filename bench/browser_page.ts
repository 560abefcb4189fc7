// The browser bench's page (bundled by bench/browser.ts, `npm run bench:browser`): our engine
// and tfjs-webgpu in one page, both on `navigator.gpu`, timing bench/browser_cases.ts through
// the Node bench's harness (bench/harness.ts), so both runs time the same way.
import * as tf from '@tensorflow/tfjs-core';
// Registers the "webgpu" backend (it does so at import when navigator.gpu exists, as in a page).
import '@tensorflow/tfjs-backend-webgpu';
// tf.grads and optimizers need tfjs's gradient functions; a bundle can simply include them.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import {
  type Capabilities,
  convSchedule,
  gemmTile,
  gemmTileKey,
  init,
  matmulSchedule,
  parseFlags,
  setFlags,
  vqSchedule,
} from '../engine/index.js';
import { browserCases } from './browser_cases.js';
import { type BenchEntry, runCase } from './harness.js';
import { setTfjsGradientLoader, timeTfjs } from './tfjs_common.js';

export interface PageOptions {
  /** Regular expression source matched against case names and families; null: every case. */
  filter: string | null;
  /** Batch of the conv layer cases. */
  convBatch: number;
  reps?: number;
  warmup?: number;
  quick: boolean;
  /** Engine switches by VQ_* variable name, as Node reads them from its environment. */
  flags: Record<string, string>;
}

export interface PageReport {
  adapter: string;
  caps: Capabilities;
  /** The kernel schedules our engine picked on this device. */
  schedules: { conv: string; matmul: string; vq: string };
  tfjs: { version: string; backend: string; adapter: string; features: string[] };
  /** Whether the page is cross-origin isolated (performance.now() is coarser when not). */
  isolated: boolean;
  entries: BenchEntry[];
  /** Cases that threw, with the message (the run goes on with the next case). */
  errors: { name: string; message: string }[];
}

export async function run(o: PageOptions): Promise<PageReport> {
  setFlags(parseFlags(o.flags));
  const r = await init();
  const c = r.caps;

  // The gradient functions are bundled above, so asking for them needs no further work here.
  setTfjsGradientLoader(async () => {});
  // tfjs requests its own adapter and device from navigator.gpu (Chromium hands out a new
  // adapter per request), as any page using tfjs-webgpu would.
  if (!(await tf.setBackend('webgpu'))) throw new Error(`tfjs could not start its webgpu backend (backend now: ${tf.getBackend()})`);
  await tf.ready();
  const tb = tf.backend() as unknown as { device: GPUDevice; adapterInfo?: { vendor?: string; architecture?: string } };
  const tfAdapter = [tb.adapterInfo?.vendor, tb.adapterInfo?.architecture].filter(Boolean).join(' ') || 'unknown';

  const tile = gemmTile();
  const report: PageReport = {
    adapter: c.description,
    caps: c,
    schedules: {
      conv: convSchedule(),
      matmul: `${matmulSchedule()} (${gemmTileKey(tile)}${tile.shareA ? ', subgroup-shared A' : ''})`,
      vq: vqSchedule(),
    },
    tfjs: { version: tf.version_core, backend: tf.getBackend(), adapter: tfAdapter, features: [...tb.device.features].sort() },
    isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    entries: [],
    errors: [],
  };
  console.log(`ours: ${c.description}; subgroups ${c.subgroups ? `${c.subgroupMinSize}-${c.subgroupMaxSize}` : 'none'}, shader-f16 ${c.shaderF16}, timestamp-query ${c.timestampQuery}, host threads ${c.hostThreads}`);
  console.log(`schedules: conv ${report.schedules.conv}, matmul ${report.schedules.matmul}, vq ${report.schedules.vq}`);
  console.log(`tfjs ${report.tfjs.version} ${report.tfjs.backend} on ${tfAdapter}`);

  const re = o.filter === null ? null : new RegExp(o.filter);
  const cases = browserCases(o.convBatch).filter((k) => !re || re.test(k.name) || re.test(k.family));
  if (cases.length === 0) throw new Error(`no browser bench case matches ${o.filter}`);
  const opts = { reps: o.reps, warmup: o.warmup, quick: o.quick, tf, timeTfjs };
  for (const [i, k] of cases.entries()) {
    console.log(`  [${i + 1}/${cases.length}] ${k.name} ...`);
    try {
      report.entries.push(await runCase(k, opts));
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      console.error(`  ${k.name} failed: ${message}`);
      report.errors.push({ name: k.name, message });
    }
  }
  return report;
}
