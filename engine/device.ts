// One WebGPU device per process (by default), acquired through Dawn's Node bindings.
// Capabilities (features, limits, CPU vs discrete GPU) are exposed so kernels can pick a
// schedule per device.
import { create, globals } from 'webgpu';
import { CPU_POLL_INTERVAL_MS, restoreDawnPolling, throttleDawnPolling } from './dawn_poll.js';

// WebGPU's global constants (GPUBufferUsage, GPUMapMode, ...) for every module of the engine.
Object.assign(globalThis, globals);

export interface DeviceOptions {
  /** Substring of the adapter's name (Dawn's `adapter=` flag). Env: VQ_ADAPTER. */
  adapter?: string;
  /** Dawn backend: 'vulkan' (default on Linux), 'metal', 'd3d12', 'opengl'. Env: VQ_BACKEND. */
  backend?: string;
  powerPreference?: GPUPowerPreference;
  /** Extra Dawn flags passed to create(). */
  dawnFlags?: string[];
  /**
   * How Dawn polls for finished GPU work (see dawn_poll.ts): 'spin' (Dawn's own setImmediate
   * loop) or a timer interval in ms. Default: 1 ms on CPU devices, 'spin' on GPUs.
   * Env: VQ_DAWN_POLL.
   */
  dawnPoll?: 'spin' | number;
}

export interface Capabilities {
  /** A software (CPU) Vulkan device such as lavapipe/llvmpipe or SwiftShader. */
  isCpu: boolean;
  description: string;
  vendor: string;
  shaderF16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  maxStorageBufferBindingSize: number;
  maxUniformBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxTextureDimension2D: number;
  /** WGSL may declare read-only storage textures (texture_storage_2d<rgba32float, read>). */
  readonlyStorageTextures: boolean;
  features: string[];
}

export interface Gpu {
  device: GPUDevice;
  adapter: GPUAdapter;
  caps: Capabilities;
}

export class NoGpuError extends Error {
  override name = 'NoGpuError';
}

const FIX_HINT =
  'On Linux without a GPU install a CPU Vulkan driver (Mesa lavapipe) ' +
  'and the Vulkan loader: `npm run setup:vulkan` (runs `bash scripts/setup-vulkan.sh`; needs root ' +
  'or sudo; on Debian 12 it takes Mesa from bookworm-backports). With a GPU, install its Vulkan ' +
  'driver. Set VQ_ADAPTER to pick an adapter by name.';

let pending: Promise<Gpu> | null = null;
let current: Gpu | null = null;

/** The process-wide device, created on first use. */
export function getGpu(opts: DeviceOptions = {}): Promise<Gpu> {
  if (!pending) {
    pending = createGpu(opts).then(
      (g) => (current = g),
      (e) => {
        pending = null;
        throw e;
      },
    );
  }
  return pending;
}

/** The device if it was created already (synchronous access for ops). */
export function currentGpu(): Gpu {
  if (!current) throw new Error('The GPU is not initialised: `await init()` before running ops.');
  return current;
}

export async function createGpu(opts: DeviceOptions = {}): Promise<Gpu> {
  const adapterName = opts.adapter ?? process.env.VQ_ADAPTER;
  const backend = opts.backend ?? process.env.VQ_BACKEND;
  const pollRequest = parseDawnPoll(opts.dawnPoll ?? process.env.VQ_DAWN_POLL);
  const flags = ['disable-dawn-features=timestamp_quantization', ...(opts.dawnFlags ?? [])];
  if (adapterName) flags.push(`adapter=${adapterName}`);
  if (backend) flags.push(`backend=${backend}`);
  process.env.XDG_RUNTIME_DIR ??= '/tmp';

  let gpu: GPU;
  try {
    gpu = create(flags) as GPU;
  } catch (e) {
    throw new NoGpuError(`${FIX_HINT}\n(Dawn failed to start: ${(e as Error).message})`);
  }
  // Dawn's instance must stay reachable from a global while its devices live, or the
  // process crashes at random once it is garbage-collected.
  (globalThis as any).navigator = { ...((globalThis as any).navigator ?? {}), gpu };
  (globalThis as any).__vqDawnInstance = gpu;

  const what = adapterName ? ` matching VQ_ADAPTER="${adapterName}"` : '';
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference });
  } catch (e) {
    // Dawn throws (listing the adapters it has) when the named adapter or backend is absent.
    throw new NoGpuError(`No WebGPU adapter${what} was found (${(e as Error).message.trim().replace(/\s*\n\s*/g, '; ')}). ${FIX_HINT}`);
  }
  if (!adapter) throw new NoGpuError(`No WebGPU adapter${what} was found. ${FIX_HINT}`);

  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxTextureDimension2D: l.maxTextureDimension2D,
  };
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });

  const info = adapter.info;
  const description = [info.vendor, info.architecture, info.device, info.description]
    .filter(Boolean)
    .join(' ');
  const isCpu =
    /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(description) ||
    (info as any).isFallbackAdapter === true;
  const caps: Capabilities = {
    isCpu,
    description: description || 'unknown adapter',
    vendor: info.vendor,
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    timestampQuery: device.features.has('timestamp-query'),
    subgroupMinSize: (info as any).subgroupMinSize ?? 0,
    subgroupMaxSize: (info as any).subgroupMaxSize ?? 0,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxUniformBufferBindingSize: device.limits.maxUniformBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    maxTextureDimension2D: device.limits.maxTextureDimension2D,
    readonlyStorageTextures: gpu.wgslLanguageFeatures?.has('readonly_and_readwrite_storage_textures') ?? false,
    features: [...adapter.features].sort(),
  };
  const poll = pollRequest ?? (isCpu ? CPU_POLL_INTERVAL_MS : 'spin');
  if (poll === 'spin') restoreDawnPolling();
  else throttleDawnPolling(poll);
  return { device, adapter, caps };
}

function parseDawnPoll(v: string | number | undefined): 'spin' | number | undefined {
  if (v === undefined || v === '') return undefined;
  if (v === 'spin') return v;
  const ms = Number(v);
  if (!(ms >= 0 && ms <= 1000)) throw new Error(`VQ_DAWN_POLL must be 'spin' or a poll interval in ms (0-1000), got '${v}'`);
  return ms;
}

/** Releases the device and lets the process exit. */
export function destroyGpu(): void {
  if (current) current.device.destroy();
  current = null;
  pending = null;
  delete (globalThis as any).__vqDawnInstance;
  restoreDawnPolling();
  if ((globalThis as any).navigator?.gpu) delete (globalThis as any).navigator.gpu;
}
