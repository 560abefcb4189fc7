// 200 training steps (forward, backward, Adam) inside tidy keep live GPU memory flat.
import t from 'tap';
import { gpu } from './helpers.js';
import { memory } from '../engine/tensor.js';
import { trainSmallMlp } from './cases/leak.js';

await gpu(t);

t.test('200 steps of forward, backward and Adam leak nothing', async (t) => {
  const { first, last, liveAfterWarmup, live } = await trainSmallMlp(200);
  t.equal(live, liveAfterWarmup, `live bytes flat over 190 steps (${liveAfterWarmup} -> ${live})`);
  t.ok(last < first, `the loss falls (${first} -> ${last})`);
  t.ok(memory().pooledBytes < 64 * 1024 * 1024, 'the pool stays small');
});
