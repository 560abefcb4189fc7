// The metrics ring (engine/readback.ts): rows come back in order with the values their
// tensors held when the row was recorded (later GPU work overwriting those tensors does not
// change them), unwritten fields read NaN, and a full ring refuses a write.
import t from 'tap';
import { gpu } from './helpers.js';
import { MetricsRing } from '../engine/readback.js';
import { add } from '../engine/elementwise.js';
import { empty, keep, tensor } from '../engine/tensor.js';

const r = await gpu(t);

t.test('rows arrive in order with their recorded values', async (t) => {
  const ring = new MetricsRing(3, 3);
  const acc = keep(tensor([0.5]));
  let cur = acc;
  const expected: number[][] = [];
  for (let step = 1; step <= 7; step++) {
    if (ring.full) {
      const row = await ring.take();
      const want = expected.shift()!;
      t.same([row.tag, ...row.values], [row.tag, ...want.map((v) => (Number.isNaN(v) ? NaN : Math.fround(v)))], `row ${row.tag}`);
    }
    const next = keep(add(cur, tensor([1.25])));
    const twice = add(next, next);
    ring.write(step, [next, step % 2 ? twice : null, cur]);
    expected.push([0.5 + 1.25 * step, step % 2 ? 2 * (0.5 + 1.25 * step) : NaN, 0.5 + 1.25 * (step - 1)]);
    twice.dispose();
    if (cur !== acc) cur.dispose();
    cur = next;
    ring.commit();
  }
  t.equal(ring.pending, 3);
  const rest = await ring.drain();
  t.same(rest.map((x) => x.tag), [5, 6, 7]);
  t.same(rest.map((x) => [...x.values]), expected.map((e) => e.map((v) => (Number.isNaN(v) ? NaN : Math.fround(v)))));
  t.equal(ring.pending, 0);
  cur.dispose();
  acc.dispose();
  ring.dispose();
});

t.test('take() commits a written row; errors name the problem', async (t) => {
  const ring = new MetricsRing(1, 1);
  const x = keep(tensor([3]));
  ring.write(9, [x]);
  t.throws(() => ring.write(10, [x]), /all 1 rows are pending; take\(\) one first/);
  const row = await ring.take();
  t.same([row.tag, row.values[0]], [9, 3]);
  await t.rejects(ring.take(), /no pending row/);
  t.throws(() => ring.write(1, [x, x]), /2 values for a ring 1 wide/);
  const u = empty([1], 'u32');
  t.throws(() => ring.write(1, [u]), /one-element f32 tensor/);
  u.dispose();
  x.dispose();
  ring.dispose();
  t.throws(() => new MetricsRing(0, 2), /width must be a positive integer, got 0/);
  await r.sync();
});
