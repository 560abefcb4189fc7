// The WebGPU device the engine runs on, from whatever entry point the platform offers: a
// browser's `navigator.gpu`, Dawn's in Node (engine/node.ts passes it in), or a device the
// caller already has. Capabilities (features, limits, CPU vs discrete GPU) are exposed so
// kernels can pick a schedule per device. Nothing here is platform-specific.

export interface InitOptions {
  /** The WebGPU entry point (`navigator.gpu` when omitted; engine/node.ts passes Dawn's). */
  gpu?: GPU;
  /** Run on this device instead of requesting one (the caller keeps ownership of it). */
  device?: GPUDevice;
  /** The adapter `device` came from (for its name and subgroup sizes); optional. */
  deviceAdapter?: GPUAdapter;
  powerPreference?: GPUPowerPreference;
  /**
   * Host threads that a CPU device's driver spreads work over (kernels size their grids by it).
   * Default: `navigator.hardwareConcurrency`, else 1; Node passes LP_NUM_THREADS or its core count.
   */
  hostThreads?: number;
  /** Called once if the device is lost (not when destroyed through destroyGpu); init() then makes a new one. */
  onDeviceLost?: (message: string) => void;
  /** What to tell a person when no adapter is found (platform-specific advice). */
  noAdapterHint?: string;
}

export interface Capabilities {
  /** A software (CPU) Vulkan device such as lavapipe/llvmpipe or SwiftShader. */
  isCpu: boolean;
  description: string;
  vendor: string;
  shaderF16: boolean;
  subgroups: boolean;
  /**
   * Dawn's subgroup-matrix feature (tensor cores; 'chromium-experimental-subgroup-matrix', which
   * Dawn offers only with its allow_unsafe_apis toggle). Detected only: no kernel uses it yet.
   */
  subgroupMatrix: boolean;
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
  /** Host threads a CPU device's driver works with (see InitOptions.hostThreads). */
  hostThreads: number;
  /** The device runs with WebGPU's default limits: requestDevice refused the adapter's. */
  defaultLimits: boolean;
  features: string[];
}

export interface Gpu {
  device: GPUDevice;
  adapter: GPUAdapter | null;
  caps: Capabilities;
}

export class NoGpuError extends Error {
  override name = 'NoGpuError';
}

/** Where WebGPU is found in browsers (shown when `navigator.gpu` is missing). */
export const BROWSER_WEBGPU_HINT =
  'WebGPU is in Chrome and Edge 113+ (on Linux start them with --enable-unsafe-webgpu ' +
  '--enable-features=Vulkan), Safari 26+ and Firefox 141+ on Windows; it needs a secure ' +
  'context (https:// or http://localhost). In Node.js, import the engine through its Node ' +
  "entry (`import { init } from 'vqvae-webgpu'` resolves to it), which starts Dawn.";

/** Limits the engine asks for: the adapter's own, larger than WebGPU's defaults where it has them. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
  'maxTextureDimension2D',
] as const;

/** Dawn's name of the subgroup-matrix feature (not in @webgpu/types' GPUFeatureName). */
export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', SUBGROUP_MATRIX_FEATURE] as GPUFeatureName[];

/** Requests an adapter and device (or takes the given device) and reads its capabilities. */
export async function createGpu(opts: InitOptions = {}): Promise<Gpu> {
  const nav = (globalThis as { navigator?: { gpu?: GPU; hardwareConcurrency?: number } }).navigator;
  const gpu = opts.gpu ?? nav?.gpu;
  const hostThreads = Math.max(1, Math.floor(opts.hostThreads ?? nav?.hardwareConcurrency ?? 1));
  if (opts.device) {
    const adapter = opts.deviceAdapter ?? null;
    return { device: opts.device, adapter, caps: capabilities(opts.device, adapter, gpu, hostThreads, false) };
  }
  if (!gpu) throw new NoGpuError(`This environment has no WebGPU (navigator.gpu is undefined). ${BROWSER_WEBGPU_HINT}`);

  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference });
  } catch (e) {
    // Dawn throws (listing the adapters it has) when a named adapter or backend is absent.
    throw new NoGpuError(`No WebGPU adapter was found (${oneLine((e as Error).message)}). ${opts.noAdapterHint ?? ''}`.trim());
  }
  if (!adapter) {
    throw new NoGpuError(
      `No WebGPU adapter was found: WebGPU is present but offered no adapter (no usable GPU driver, or the GPU is blocklisted). ${opts.noAdapterHint ?? 'In Chrome see chrome://gpu; on Linux Chrome and Edge need --enable-unsafe-webgpu (with --enable-features=Vulkan).'}`,
    );
  }

  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  let device: GPUDevice;
  let defaultLimits = false;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (e) {
    // Some browsers refuse limits above their own tiers: run with the defaults instead.
    console.warn(`[vq] requestDevice refused the adapter's limits (${oneLine((e as Error).message)}); retrying with WebGPU's default limits`);
    try {
      device = await adapter.requestDevice({ requiredFeatures });
    } catch (e2) {
      throw new NoGpuError(`The WebGPU adapter refused to create a device: ${oneLine((e2 as Error).message)}`);
    }
    defaultLimits = true;
  }
  return { device, adapter, caps: capabilities(device, adapter, gpu, hostThreads, defaultLimits) };
}

function oneLine(s: string): string {
  return s.trim().replace(/\s*\n\s*/g, '; ');
}

function capabilities(device: GPUDevice, adapter: GPUAdapter | null, gpu: GPU | undefined, hostThreads: number, defaultLimits: boolean): Capabilities {
  // GPUDevice.adapterInfo exists in current browsers and Dawn; older ones only have adapter.info.
  const info = (adapter?.info ?? (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? {}) as Partial<GPUAdapterInfo> & {
    isFallbackAdapter?: boolean;
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
  };
  const description = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const isCpu = /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(description) || info.isFallbackAdapter === true;
  const l = device.limits;
  return {
    isCpu,
    description: description || 'unknown adapter',
    vendor: info.vendor ?? '',
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    subgroupMatrix: device.features.has(SUBGROUP_MATRIX_FEATURE),
    timestampQuery: device.features.has('timestamp-query'),
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxUniformBufferBindingSize: l.maxUniformBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxTextureDimension2D: l.maxTextureDimension2D,
    readonlyStorageTextures: gpu?.wgslLanguageFeatures?.has('readonly_and_readwrite_storage_textures') ?? false,
    hostThreads,
    defaultLimits,
    features: [...device.features].sort(),
  };
}
