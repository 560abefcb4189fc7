// Bytes uploaded as bytes and widened on the GPU through a 256-entry table (engine/upload.ts)
// equal the CPU's conversion (train/data/preprocess.ts u8ToFloat) bit for bit, on sizes that
// are not multiples of 4 bytes, and one input buffer rewritten between launches that are not
// yet finished keeps each launch's own bytes (queue order).
import t from 'tap';
import { gpu, assertBitwise } from './helpers.js';
import { ByteInput } from '../engine/upload.js';
import { Rng } from '../engine/random.js';
import { u8ToFloat } from '../train/data/preprocess.js';

await gpu(t);

const TABLE = u8ToFloat(Uint8Array.from({ length: 256 }, (_, i) => i));

function bytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  if (n >= 2) [b[0], b[n - 1]] = [0, 255];
  return b;
}

t.test('the table is the float64 x / 255 - 0.5 rounded to f32', async (t) => {
  t.same([...TABLE], Array.from({ length: 256 }, (_, i) => Math.fround(i / 255 - 0.5)));
});

t.test('widen equals u8ToFloat bit for bit on awkward sizes', async (t) => {
  const input = new ByteInput(3 * 64 * 64 * 2 + 7, TABLE);
  for (const n of [1, 2, 3, 5, 7, 255, 1021, 3 * 64 * 64 + 1, 3 * 64 * 64 * 2 + 7]) {
    const b = bytes(n, n);
    input.write(b);
    const x = input.widen([n]);
    assertBitwise(t, (await x.read()) as Float32Array, u8ToFloat(b), `${n} bytes`);
    x.dispose();
  }
  t.throws(() => input.write(new Uint8Array(3 * 64 * 64 * 2 + 8)), /24584 bytes for a 24583-byte input/);
  input.write(bytes(6, 1));
  t.throws(() => input.widen([2, 2]), /holds 4 values, the input 6 bytes/);
  t.throws(() => new ByteInput(4, new Float32Array(255)), /256 entries, got 255/);
  input.dispose();
});

t.test('rewriting the input before earlier launches finish keeps each launch its own bytes', async (t) => {
  const input = new ByteInput(1001, TABLE);
  const batches = [bytes(1001, 11), bytes(999, 12), bytes(1001, 13)];
  const outs = batches.map((b) => {
    input.write(b);
    return input.widen([b.length]);
  });
  for (let i = 0; i < batches.length; i++) {
    assertBitwise(t, (await outs[i].read()) as Float32Array, u8ToFloat(batches[i]), `launch ${i}`);
    outs[i].dispose();
  }
  input.dispose();
});
