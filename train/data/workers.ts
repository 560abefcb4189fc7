// Starting data workers, both from compiled JavaScript and from TypeScript run through tsx
// (a worker does not inherit tsx's hooks, so a .ts worker is started through a small
// bootstrap that registers them first).
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const here = import.meta.url;
const ext = extname(fileURLToPath(here));
const workerUrl = new URL(`./worker${ext}`, here);

let tsxApi: string | null | undefined;

function tsxRegisterUrl(): string | null {
  if (tsxApi !== undefined) return tsxApi;
  try {
    tsxApi = import.meta.resolve('tsx/esm/api');
  } catch {
    tsxApi = null;
  }
  return tsxApi;
}

/** Whether data workers can be started here (false only for .ts sources without tsx). */
export function workersAvailable(): boolean {
  return ext !== '.ts' || tsxRegisterUrl() !== null;
}

/** Starts one data worker (worker.ts / worker.js). Throws if workers are unavailable. */
export function startDataWorker(): Worker {
  const workerData = { vqvaeDataWorker: true };
  if (ext !== '.ts') return new Worker(workerUrl, { workerData });
  const api = tsxRegisterUrl();
  if (!api) throw new Error('data workers need tsx to run from TypeScript sources');
  const code =
    `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })` +
    `.catch((e) => { setImmediate(() => { throw e; }); });`;
  return new Worker(code, { eval: true, workerData });
}

/**
 * Terminates a worker and waits for it to go. A timer keeps this thread's event loop alive
 * meanwhile: a worker that was unref'd (idle) does not, and the process could otherwise exit
 * with the caller's await unresolved.
 */
export async function terminateWorker(w: Worker): Promise<void> {
  const keepAlive = setInterval(() => {}, 1000);
  try {
    await w.terminate();
  } finally {
    clearInterval(keepAlive);
  }
}
