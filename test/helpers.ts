// Shared utilities of the Node tests: one GPU per test file (Dawn, through the engine's Node
// entry), plus the platform-free checks of test/check.ts.
import { destroyGpu, init, type Runtime } from '../engine/node.js';

export * from './check.js';

type Tap = { teardown: (fn: () => void | Promise<void>) => void };

/** Initialises the GPU for a test file and releases it when the file's tests end. */
export async function gpu(t: Tap): Promise<Runtime> {
  const r = await init();
  t.teardown(() => destroyGpu());
  return r;
}
