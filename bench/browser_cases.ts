// The cases `npm run bench:browser` times in the page, taken from the Node bench's own
// definitions (no copies): the quick model's training step at batch 8, the seed model's conv
// layers (forward / input gradient / weight gradient) at one batch, and the vector-quantiser
// cases. Platform-free: the page builds the list, Node lists it.
import { convCases } from './conv_cases.js';
import type { BenchCase } from './harness.js';
import { benchCases as stepCases } from './train_step.js';
import { benchCases as vqCases } from './vq.js';

/** The step case the browser bench times (the quick preset's model at batch 8). */
export const STEP_CASE = 'train_step.quick.b8';

/** The browser bench's cases with the conv layers at batch `convBatch`. */
export function browserCases(convBatch: number): BenchCase[] {
  const step = stepCases.filter((c) => c.name === STEP_CASE);
  if (step.length !== 1) throw new Error(`browserCases: bench/train_step.ts has no case ${STEP_CASE}`);
  // The whole encoder + decoder case is left out: the step already times the whole network, and
  // on a CPU device in a page that case alone takes a large share of the run's time budget.
  const layers = convCases([convBatch]).filter((c) => c.params.pass !== 'model');
  return [...step, ...layers, ...vqCases];
}
