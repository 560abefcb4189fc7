// tfjs-webgpu as a comparison peer, for benchmarks only (nothing in engine/ depends on it).
// tfjs-core + tfjs-backend-webgpu run in this process on the same Dawn `navigator.gpu` as our
// engine (tfjs makes its own GPUDevice on it). Both are devDependencies. This is the Node
// part (Dawn, the loader hook); timing and shared work builders are in bench/tfjs_common.ts
// (re-exported here), which the browser page uses too.
//
// Notes:
// * tfjs-backend-webgpu registers its backend at import time only if `navigator.gpu` exists,
//   so it is imported dynamically, after the Dawn instance is on globalThis.
// * `dataSync()` is impossible on this backend in Node (it needs OffscreenCanvas); use
//   `await t.data()`.
// * Gradients: tfjs-core's Node build (dist/tf-core.node.js) contains and registers none, so
//   tf.grad fails ("gradient function not found for Sum"). `loadTfjs({ gradients: true })`
//   imports `@tensorflow/tfjs-core/dist/register_all_gradients.js` instead of pulling in the
//   223 MB `@tensorflow/tfjs` union package. That file belongs to tfjs-core's unbundled ES-module
//   build, which plain Node can't load (no "type": "module", extension-less and directory
//   imports), so a small module-loader hook (GRADIENTS_HOOK) fixes both, for tfjs-core's dist/
//   only. It loads a second copy of tfjs-core's op code, which tfjs supports: the engine, the
//   kernel and gradient registries live on a global and `instanceof Tensor` is duck-typed (the
//   union package's Node bundle works the same way).
import { register } from 'node:module';
import { create, globals } from 'webgpu';
import { type Tf, setTfjsGradientLoader } from './tfjs_common.js';

export { type Tf, type TimeOptions, setTfjsGradientLoader, syncTfjs, tfjsGradients, tfjsMatmul, timeTfjs } from './tfjs_common.js';

export interface LoadTfjsOptions {
  /** Register tfjs's gradient functions (tf.grad, tf.grads, optimizers). Default false. */
  gradients?: boolean;
}

// Resolve and load hooks that let Node import tfjs-core's unbundled ES-module build
// (dist/**/*.js except the dist/tf-core.* bundles): they add the missing `.js` or `/index.js`
// to relative specifiers and load those files as ES modules.
const GRADIENTS_HOOK = `
const DIST = '/@tensorflow/tfjs-core/dist/';
const inEsmBuild = (url) => typeof url === 'string' && url.startsWith('file:') &&
  url.includes(DIST) && !url.includes(DIST + 'tf-core.') && url.endsWith('.js');
export async function resolve(specifier, context, next) {
  if (inEsmBuild(context.parentURL) && specifier.startsWith('.') && !specifier.endsWith('.js')) {
    try { return await next(specifier + '.js', context); }
    catch { return next(specifier + '/index.js', context); }
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (inEsmBuild(url)) return next(url, { ...context, format: 'module' });
  return next(url, context);
}
`;

let gradientsDone: Promise<void> | null = null;

/** Registers all of tfjs's gradient functions once (see the note at the top). */
function registerGradients(): Promise<void> {
  gradientsDone ??= (async () => {
    register('data:text/javascript,' + encodeURIComponent(GRADIENTS_HOOK));
    const spec = '@tensorflow/tfjs-core/dist/register_all_gradients.js';
    await import(spec);
  })().catch((e) => {
    gradientsDone = null;
    throw new Error(`loadTfjs: registering tfjs gradients failed: ${(e as Error).message}`);
  });
  return gradientsDone;
}

// Cases ask for gradients through tfjsGradients() (platform-free); in Node this hook does it.
setTfjsGradientLoader(registerGradients);

let loaded: Promise<Tf> | null = null;
/** True when loadTfjs created the Dawn instance itself (rather than reusing the engine's). */
let ownsDawn = false;

/** The Dawn GPU on globalThis, creating it (like engine/device.ts does) when missing. */
function ensureNavigatorGpu(): GPU {
  const g = globalThis as any;
  const existing = g.navigator?.gpu as GPU | undefined;
  if (existing) return existing;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  Object.assign(globalThis, globals);
  let gpu: GPU;
  try {
    gpu = create(['disable-dawn-features=timestamp_quantization']) as GPU;
  } catch (e) {
    throw new Error(`loadTfjs: Dawn failed to start: ${(e as Error).message}`);
  }
  // Dawn's instance must stay reachable from a global while its devices live (or the process
  // crashes once it is garbage-collected), so it goes on globalThis like the engine's does.
  try {
    g.navigator = { ...(g.navigator ?? {}), gpu };
  } catch {
    /* a read-only navigator (Node >= 21): fall through */
  }
  if (g.navigator?.gpu !== gpu) {
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu },
      configurable: true,
      writable: true,
    });
  }
  g.__vqDawnInstance ??= gpu;
  ownsDawn = true;
  return gpu;
}

async function load(opts: LoadTfjsOptions): Promise<Tf> {
  const gpu = ensureNavigatorGpu();
  // tfjs uses the GPUBufferUsage / GPUMapMode / GPUShaderStage globals at run time.
  if (typeof (globalThis as any).GPUBufferUsage === 'undefined') Object.assign(globalThis, globals);
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new Error(
      'loadTfjs: navigator.gpu.requestAdapter() returned null, so the tfjs webgpu backend cannot ' +
        'start. On a machine with no GPU install Mesa lavapipe: `npm run setup:vulkan`.',
    );
  }
  const tf: Tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (opts.gradients) await registerGradients();
  if (!tf.findBackendFactory('webgpu')) {
    throw new Error(
      'loadTfjs: @tensorflow/tfjs-backend-webgpu did not register the "webgpu" backend ' +
        '(it does so only when globalThis.navigator.gpu exists when it is first imported).',
    );
  }
  let ok = false;
  try {
    ok = await tf.setBackend('webgpu');
  } catch (e) {
    throw new Error(`loadTfjs: tf.setBackend('webgpu') failed: ${(e as Error).message}`);
  }
  if (!ok || tf.getBackend() !== 'webgpu') {
    throw new Error(
      `loadTfjs: could not initialise the tfjs "webgpu" backend (tf.getBackend() = ` +
        `${tf.getBackend()}); see the warnings above.`,
    );
  }
  await tf.ready();
  return tf;
}

/**
 * tfjs-core with its webgpu backend active, on this process's Dawn `navigator.gpu` (created
 * if missing). Cached: later calls return the same module. Throws if the backend can't start.
 */
export function loadTfjs(opts: LoadTfjsOptions = {}): Promise<Tf> {
  if (!loaded) {
    loaded = load(opts).catch((e) => {
      loaded = null;
      throw e;
    });
  } else if (opts.gradients) {
    loaded = loaded.then(async (tf) => {
      await registerGradients();
      return tf;
    });
  }
  return loaded;
}

/**
 * Drops tfjs's webgpu backend (destroying its device). If loadTfjs created the Dawn instance,
 * also removes it from globalThis so that Node can exit.
 */
export function unloadTfjs(tf: Tf): void {
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  loaded = null;
  if (ownsDawn) {
    const g = globalThis as any;
    if (g.__vqDawnInstance === g.navigator?.gpu) delete g.__vqDawnInstance;
    if (g.navigator?.gpu) delete g.navigator.gpu;
    ownsDawn = false;
  }
}
