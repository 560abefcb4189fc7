// The data worker: decodes and preprocesses image files for prepare, and assembles batches
// for the loader. Started by workers.ts; talks only through messages.
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { IMAGE_VALUES, loadImageBytes, type Preprocess } from './images.js';
import { assembleBatch, renderRange, type BatchFormat, type StoreSpec } from './store.js';

export type WorkerRequest =
  | { type: 'prepare'; id: number; files: string[]; preprocess: Preprocess }
  | { type: 'store'; store: StoreSpec }
  | { type: 'batch'; id: number; indices: Uint32Array; format: BatchFormat }
  | { type: 'render'; id: number; store: StoreSpec; start: number; end: number };

export type WorkerReply =
  | { type: 'prepared'; id: number; data: Uint8Array; errors: { k: number; error: string }[] }
  | { type: 'batch'; id: number; data: Float32Array | Uint8Array }
  | { type: 'rendered'; id: number }
  | { type: 'error'; id: number; error: string };

/** Decodes files into consecutive planar slots; failures leave zeros and are reported. */
export function prepareFiles(files: string[], preprocess: Preprocess): { data: Uint8Array; errors: { k: number; error: string }[] } {
  const data = new Uint8Array(files.length * IMAGE_VALUES);
  const errors: { k: number; error: string }[] = [];
  for (let k = 0; k < files.length; k++) {
    try {
      loadImageBytes(readFileSync(files[k]), preprocess, data, k * IMAGE_VALUES);
    } catch (e) {
      data.fill(0, k * IMAGE_VALUES, (k + 1) * IMAGE_VALUES);
      errors.push({ k, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return { data, errors };
}

// Only in threads started by workers.ts (importing this module elsewhere must not listen).
if (parentPort && (workerData as { vqvaeDataWorker?: boolean } | null)?.vqvaeDataWorker === true) {
  const port = parentPort;
  let store: StoreSpec | null = null;
  port.on('message', (msg: WorkerRequest) => {
    try {
      if (msg.type === 'prepare') {
        const { data, errors } = prepareFiles(msg.files, msg.preprocess);
        const reply: WorkerReply = { type: 'prepared', id: msg.id, data, errors };
        port.postMessage(reply, [data.buffer as ArrayBuffer]);
      } else if (msg.type === 'render') {
        renderRange(msg.store, msg.start, msg.end);
        const reply: WorkerReply = { type: 'rendered', id: msg.id };
        port.postMessage(reply);
      } else if (msg.type === 'store') {
        store = msg.store;
      } else if (msg.type === 'batch') {
        if (!store) throw new Error('no store set');
        const data = assembleBatch(store, msg.indices, msg.format);
        const reply: WorkerReply = { type: 'batch', id: msg.id, data };
        port.postMessage(reply, [data.buffer as ArrayBuffer]);
      }
    } catch (e) {
      const id = 'id' in msg ? msg.id : -1;
      const reply: WorkerReply = { type: 'error', id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
      port.postMessage(reply);
    }
  });
}
