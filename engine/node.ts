// The engine in Node.js: the package's "node" entry. Everything Node-specific lives here and
// nowhere else under engine/: Dawn's WebGPU (its instance kept alive, its polling throttled
// on CPU devices, backend and adapter choice), the `VQ_*` environment variables as engine
// flags, the host's thread count, the writer of flag dumpWgsl and the autotuner's file store.
// It re-exports the whole platform-free engine, with `init` and `destroyGpu` replaced by
// versions that start and stop Dawn.
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { CPU_POLL_INTERVAL_MS, restoreDawnPolling, throttleDawnPolling } from './dawn_poll.js';
import { NoGpuError, type InitOptions } from './device.js';
import { type TuneStore, setTuneStore } from './autotune.js';
import { flags, parseFlags, setFlags } from './flags.js';
import { type Kernel, type Runtime, currentRuntime, destroyGpu as destroyCore, init as initCore } from './runtime.js';

export * from './index.js';
export { dawnPollingState, restoreDawnPolling, throttleDawnPolling } from './dawn_poll.js';

// WebGPU's global constants (GPUBufferUsage, GPUMapMode, ...), which browsers have built in.
Object.assign(globalThis, globals);

// The environment is read once, here. A bad value is reported by init(), not at import.
let envError: Error | null = null;
try {
  setFlags(parseFlags(process.env));
} catch (e) {
  envError = e as Error;
}

export interface NodeInitOptions extends InitOptions {
  /** Substring of the adapter's name (Dawn's `adapter=` flag). Default: flag adapter (VQ_ADAPTER). */
  adapter?: string;
  /** Dawn backend: 'vulkan' (default on Linux), 'metal', 'd3d12', 'opengl'. Default: flag backend (VQ_BACKEND). */
  backend?: string;
  /** Extra Dawn flags passed to create(). */
  dawnFlags?: string[];
  /**
   * How Dawn polls for finished GPU work (see dawn_poll.ts): 'spin' (Dawn's own setImmediate
   * loop) or a timer interval in ms. Default: flag dawnPoll (VQ_DAWN_POLL), else 1 ms on CPU
   * devices and 'spin' on GPUs.
   */
  dawnPoll?: 'spin' | number;
}

const FIX_HINT =
  'On Linux without a GPU install a CPU Vulkan driver (Mesa lavapipe) ' +
  'and the Vulkan loader: `npm run setup:vulkan` (runs `bash scripts/setup-vulkan.sh`; needs root ' +
  'or sudo; on Debian 12 it takes Mesa from bookworm-backports). With a GPU, install its Vulkan ' +
  'driver. Set VQ_ADAPTER to pick an adapter by name.';

let pending: Promise<Runtime> | null = null;

/** Starts Dawn and the engine on it (idempotent while the device lives). */
export function init(opts: NodeInitOptions = {}): Promise<Runtime> {
  const live = currentRuntime();
  if (live) return Promise.resolve(live);
  pending ??= initDawn(opts).finally(() => {
    pending = null;
  });
  return pending;
}

async function initDawn(opts: NodeInitOptions): Promise<Runtime> {
  if (envError) throw envError;
  const f = flags();
  const poll = dawnPollSetting(opts.dawnPoll ?? f.dawnPoll);
  const adapterName = opts.adapter ?? f.adapter;
  const backend = opts.backend ?? f.backend;
  let gpu = opts.gpu;
  if (!gpu && !opts.device) {
    const dawnFlags = ['disable-dawn-features=timestamp_quantization', ...(opts.dawnFlags ?? [])];
    if (adapterName) dawnFlags.push(`adapter=${adapterName}`);
    if (backend) dawnFlags.push(`backend=${backend}`);
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    try {
      gpu = create(dawnFlags) as GPU;
    } catch (e) {
      throw new NoGpuError(`${FIX_HINT}\n(Dawn failed to start: ${(e as Error).message})`);
    }
    // Dawn's instance must stay reachable from a global while its devices live, or the
    // process crashes at random once it is garbage-collected.
    (globalThis as any).navigator = { ...((globalThis as any).navigator ?? {}), gpu };
    (globalThis as any).__vqDawnInstance = gpu;
  }
  const what = adapterName ? ` matching VQ_ADAPTER="${adapterName}"` : '';
  let r: Runtime;
  try {
    r = await initCore({
      gpu,
      device: opts.device,
      deviceAdapter: opts.deviceAdapter,
      powerPreference: opts.powerPreference,
      onDeviceLost: opts.onDeviceLost,
      hostThreads: opts.hostThreads ?? (Number(process.env.LP_NUM_THREADS) || availableParallelism()),
      noAdapterHint: FIX_HINT,
    });
  } catch (e) {
    if (e instanceof NoGpuError && what) throw new NoGpuError(e.message.replace('No WebGPU adapter', `No WebGPU adapter${what}`));
    throw e;
  }
  r.onKernelSource ??= dumpWgsl;
  const interval = poll ?? (r.caps.isCpu ? CPU_POLL_INTERVAL_MS : 'spin');
  if (interval === 'spin') restoreDawnPolling();
  else throttleDawnPolling(interval);
  return r;
}

/** Directories dumpWgsl has created. */
const dumpDirs = new Set<string>();

/**
 * Flag dumpWgsl (VQ_DUMP_WGSL=DIR): writes a kernel's WGSL to DIR/<name>.<hash of key>.wgsl and
 * appends `file<TAB>key` to DIR/kernels.tsv. The flag is read at each compile, so withFlags
 * scopes it too.
 */
export function dumpWgsl(kernel: Kernel, code: string): void {
  const dir = flags().dumpWgsl;
  if (!dir) return;
  if (!dumpDirs.has(dir)) {
    mkdirSync(dir, { recursive: true });
    dumpDirs.add(dir);
  }
  const file = `${kernel.name.replace(/[^\w.-]/g, '_')}.${createHash('sha256').update(kernel.key).digest('hex').slice(0, 12)}.wgsl`;
  writeFileSync(join(dir, file), code);
  appendFileSync(join(dir, 'kernels.tsv'), `${file}\t${kernel.key}\n`);
}

/**
 * The autotuner's store in Node: one JSON file per adapter, `autotune-<adapter hash>.json` in
 * flag autotuneCache's directory (VQ_AUTOTUNE_CACHE; default ~/.cache/vqvae-webgpu), or in
 * `dir` when given. Written to a temporary file and renamed, so a reader never sees half of one.
 */
export function fileTuneStore(dir?: string): TuneStore {
  const folder = () => dir ?? (flags().autotuneCache || join(homedir(), '.cache', 'vqvae-webgpu'));
  const where = (adapter: string) => join(folder(), `autotune-${adapter}.json`);
  return {
    where,
    load(adapter) {
      try {
        return readFileSync(where(adapter), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    save(adapter, text) {
      mkdirSync(folder(), { recursive: true });
      const tmp = `${where(adapter)}.${process.pid}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, where(adapter));
    },
  };
}

setTuneStore(fileTuneStore());

/** Validates a Dawn polling setting: undefined/'auto' (by device), 'spin' or 0-1000 ms. */
export function dawnPollSetting(v: string | number | undefined): 'spin' | number | undefined {
  if (v === undefined || v === '' || v === 'auto') return undefined;
  if (v === 'spin') return v;
  const ms = Number(v);
  if (!(ms >= 0 && ms <= 1000)) throw new Error(`VQ_DAWN_POLL must be 'spin' or a poll interval in ms (0-1000), got '${v}'`);
  return ms;
}

/** Destroys the device, lets Dawn's instance go and restores Dawn's polling, so the process can exit. */
export function destroyGpu(): void {
  destroyCore();
  delete (globalThis as any).__vqDawnInstance;
  restoreDawnPolling();
  if ((globalThis as any).navigator?.gpu) delete (globalThis as any).navigator.gpu;
}
