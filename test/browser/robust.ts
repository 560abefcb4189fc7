// The engine's failure paths in a page: a device lost under it and a new one from init(), a
// browser with no usable WebGPU, and engine switches read from the page's URL. Each function
// returns what it saw; test/browser.test.ts makes the assertions.
import { Rng, convSchedule, currentRuntime, destroyGpu, flags, flagsFromUrl, init, matmul, rt, setFlags, tensor, withFlags } from '../../engine/index.js';
import { compare } from '../check.js';
import { refMatmul } from '../ref/matmul.js';

export interface ErrorInfo {
  name: string;
  message: string;
}

/** The error `fn` throws or rejects with, or null when it succeeds. */
async function errorOf(fn: () => unknown): Promise<ErrorInfo | null> {
  try {
    await fn();
    return null;
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message };
  }
}

export interface DeviceLossReport {
  /** Messages onDeviceLost received after the device was destroyed directly. */
  lost: string[];
  /** currentRuntime() after the loss (it must be null). */
  runtimeAfterLoss: boolean;
  /** A matmul on the lost device, and a read of a tensor made before the loss. */
  opError: ErrorInfo | null;
  readError: ErrorInfo | null;
  /** init() after the loss: a new runtime on a new device. */
  newRuntime: boolean;
  newDevice: boolean;
  /** A matmul on the new device against the float64 reference. */
  matmul: { ok: boolean; worst: string };
  /** Messages onDeviceLost received when the new device was destroyed through destroyGpu. */
  lostOnDestroyGpu: string[];
}

export async function deviceLoss(): Promise<DeviceLossReport> {
  const rng = new Rng(7);
  const [M, K, N] = [5, 7, 3];
  const ad = rng.uniformArray(M * K, -1, 1);
  const bd = rng.uniformArray(K * N, -1, 1);
  const want = refMatmul(ad, [M, K], bd, [K, N]);

  const lost: string[] = [];
  const r1 = await init({ onDeviceLost: (m) => lost.push(m) });
  const a = tensor(ad, [M, K]);
  const b = tensor(bd, [K, N]);
  await matmul(a, b).read();
  // Destroyed behind the engine's back (as a driver reset would), not through destroyGpu.
  rt().device.destroy();
  await r1.device.lost;
  const runtimeAfterLoss = currentRuntime() !== null;
  const opError = await errorOf(() => matmul(a, b));
  const readError = await errorOf(() => a.read());

  const lostAgain: string[] = [];
  const r2 = await init({ onDeviceLost: (m) => lostAgain.push(m) });
  const got = await matmul(tensor(ad, [M, K]), tensor(bd, [K, N])).read();
  const check = compare(got, want.data, { rtol: 1e-5, atol: 4 * K * 2 ** -23 });
  const newRuntime = r2 !== r1 && !r2.isLost;
  destroyGpu();
  await r2.device.lost;
  return {
    lost,
    runtimeAfterLoss,
    opError,
    readError,
    newRuntime,
    newDevice: r2.device !== r1.device,
    matmul: check,
    lostOnDestroyGpu: lostAgain,
  };
}

export interface NoWebGpuReport {
  userAgent: string;
  /** Whether navigator.gpu exists, and the adapter requestAdapter() gives (null: none). */
  navigatorGpu: boolean;
  adapter: string | null;
  /** init() in this page as it is. */
  initError: ErrorInfo | null;
  /** init() after navigator.gpu is deleted (a browser without the WebGPU API). */
  navigatorGpuAfterDelete: boolean;
  initErrorWithoutApi: ErrorInfo | null;
}

/** The page's globals this module reads (the project compiles without the DOM library). */
const page = globalThis as unknown as {
  navigator: { gpu?: GPU; userAgent: string };
  Navigator: { prototype: object };
  location: { search: string };
};

export async function noWebGpu(): Promise<NoWebGpuReport> {
  const gpu = page.navigator.gpu;
  let adapter: string | null = null;
  if (gpu) {
    const a = await gpu.requestAdapter();
    adapter = a ? [a.info.vendor, a.info.architecture, a.info.description].filter(Boolean).join(' ') || 'an unnamed adapter' : null;
  }
  const initError = await errorOf(() => init());
  if (!initError) destroyGpu();
  // Navigator's gpu attribute is configurable: deleting it leaves a page without the API.
  delete (page.Navigator.prototype as { gpu?: GPU }).gpu;
  const initErrorWithoutApi = await errorOf(() => init());
  return { userAgent: page.navigator.userAgent, navigatorGpu: gpu !== undefined, adapter, initError, navigatorGpuAfterDelete: 'gpu' in page.navigator, initErrorWithoutApi };
}

export interface UrlFlagsReport {
  search: string;
  /** flagsFromUrl's error for a bad value (nothing is set then), else null. */
  error: string | null;
  /** flags().convSchedule after applying the URL. */
  convSchedule: string;
  /** The schedule conv kernels use with the URL's flags, and with 'auto' on this device (null after an error). */
  engineConvSchedule: string | null;
  autoConvSchedule: string | null;
}

/** Applies the page URL's switches (`?VQ_CONV_SCHEDULE=smem`) as a page would at start-up. */
export async function urlFlags(): Promise<UrlFlagsReport> {
  const search = page.location.search;
  let error: string | null = null;
  try {
    setFlags(flagsFromUrl(search));
  } catch (e) {
    error = (e as Error).message;
  }
  let engineConvSchedule: string | null = null;
  let autoConvSchedule: string | null = null;
  if (!error) {
    await init();
    engineConvSchedule = convSchedule();
    autoConvSchedule = withFlags({ convSchedule: 'auto' }, () => convSchedule());
  }
  return { search, error, convSchedule: flags().convSchedule, engineConvSchedule, autoConvSchedule };
}
