// Dawn's completion polling on CPU devices: throttled to a timer (no busy loop stealing a core
// from the device's worker threads), while every other setImmediate user is left alone.
import t from 'tap';
import { promisify } from 'node:util';
import { gpu } from './helpers.js';
import { dawnPollSetting, dawnPollingState, restoreDawnPolling, throttleDawnPolling } from '../engine/node.js';
import { matmul } from '../engine/matmul.js';
import { rand } from '../engine/tensor.js';

const r = await gpu(t);

t.test('CPU devices poll on a timer, GPUs keep Dawn\'s own loop', async (t) => {
  t.equal(dawnPollingState().throttled, r.caps.isCpu, `throttled iff the adapter is a CPU device (${r.caps.description})`);
});

t.test('a wait for GPU work polls about once per interval, not thousands of times', async (t) => {
  throttleDawnPolling(1);
  t.teardown(() => (r.caps.isCpu ? throttleDawnPolling() : restoreDawnPolling()));
  const a = rand([256, 256]);
  const polls0 = dawnPollingState().polls;
  const t0 = performance.now();
  for (let i = 0; i < 8; i++) matmul(a, a).dispose();
  await r.sync();
  const ms = performance.now() - t0;
  const polls = dawnPollingState().polls - polls0;
  t.ok(polls >= 1, `Dawn's poll went through the timer (${polls} polls)`);
  // Each throttled poll waits >= 1 ms; Dawn's busy loop polled ~100 times per ms here.
  t.ok(polls <= ms + 20, `${polls} polls in ${ms.toFixed(1)} ms`);
  a.dispose();
});

t.test('other setImmediate callers are not delayed or changed', async (t) => {
  throttleDawnPolling(50);
  t.teardown(() => (r.caps.isCpu ? throttleDawnPolling() : restoreDawnPolling()));
  const order: string[] = [];
  const late = new Promise<void>((res) => setTimeout(() => (order.push('timer 20 ms'), res()), 20));
  setImmediate(() => order.push('js callback'));
  setImmediate((x: string) => order.push(x), 'callback with an argument');
  await new Promise<void>((res) => setImmediate(res)); // a native function with one parameter
  order.push('native resolve');
  await promisify(setImmediate)();
  order.push('promisified');
  await late;
  t.same(order, ['js callback', 'callback with an argument', 'native resolve', 'promisified', 'timer 20 ms']);
});

t.test('restore and bad settings', async (t) => {
  restoreDawnPolling();
  t.equal(dawnPollingState().throttled, false);
  throttleDawnPolling(2);
  t.same([dawnPollingState().throttled, dawnPollingState().intervalMs], [true, 2]);
  if (r.caps.isCpu) throttleDawnPolling();
  else restoreDawnPolling();
  t.throws(() => throttleDawnPolling(-1), /interval must be/);
  t.throws(() => throttleDawnPolling(NaN), /interval must be/);
  t.throws(() => dawnPollSetting(-3), /VQ_DAWN_POLL must be 'spin' or a poll interval/);
  t.throws(() => dawnPollSetting('fast'), /VQ_DAWN_POLL must be/);
  t.same([dawnPollSetting('auto'), dawnPollSetting(''), dawnPollSetting('spin'), dawnPollSetting('2')], [undefined, undefined, 'spin', 2]);
});
