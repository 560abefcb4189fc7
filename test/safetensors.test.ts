// safetensors reading and writing: a bit-exact round trip, every malformed-file case gets an
// error that names the problem (the same error from a file, an ArrayBuffer or a Uint8Array
// view), the byte functions stay platform-free, and (when torch is installed) files cross
// over to PyTorch.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { TORCH_DIR, type TorchPython, torchTest } from './torch/python.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_HEADER_BYTES, SafetensorsError, decodeSafetensors, encodeSafetensors, toFloat32 } from '../model/safetensors.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors_file.js';

const dir = mkdtempSync(join(tmpdir(), 'vq-st-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const sample = () => ({
  'a.weight': { dtype: 'F32' as const, shape: [2, 3], data: new Float32Array([1, -2.5, 3e-8, NaN, -0, Infinity]) },
  step: { dtype: 'I64' as const, shape: [], data: new BigInt64Array([123456789012n]) },
  idx: { dtype: 'U32' as const, shape: [3], data: new Uint32Array([0, 7, 4294967295]) },
  empty: { dtype: 'F32' as const, shape: [0, 4], data: new Float32Array(0) },
});

/** A file from a hand-written header and data section. */
function craft(header: unknown, data = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

t.test('round trip is bit-exact and the header is 8-byte aligned', async (t) => {
  const path = join(dir, 'rt.safetensors');
  writeSafetensors(path, sample(), { format: 'pt', note: 'x' });
  const bytes = readFileSync(path);
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  t.equal((8 + headerLen) % 8, 0, 'data section starts 8-byte aligned');
  const { tensors, metadata } = readSafetensors(path);
  t.same(metadata, { format: 'pt', note: 'x' });
  const a = tensors.get('a.weight')!;
  t.same(a.shape, [2, 3]);
  t.same([...a.bytes], [...new Uint8Array(sample()['a.weight'].data.buffer)], 'same bytes (NaN, -0 and Inf included)');
  t.same(new BigInt64Array(tensors.get('step')!.bytes.slice().buffer)[0], 123456789012n);
  t.same([...new Uint32Array(tensors.get('idx')!.bytes.slice().buffer)], [0, 7, 4294967295]);
  t.same(tensors.get('empty')!.shape, [0, 4]);
  t.same([...toFloat32(a)].map(String), ['1', '-2.5', String(Math.fround(3e-8)), 'NaN', '0', 'Infinity']);
});

t.test('half-precision and f64 files convert to f32', async (t) => {
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00]); // 1, -2, 2^-24, inf
  const bf16 = new Uint16Array([0x3f80, 0xc040]); // 1, -3
  const file = encodeSafetensors({
    h: { dtype: 'F16', shape: [4], data: f16 },
    b: { dtype: 'BF16', shape: [2], data: bf16 },
    d: { dtype: 'F64', shape: [1], data: new Float64Array([0.1]) },
  });
  const { tensors } = decodeSafetensors(file);
  t.same([...toFloat32(tensors.get('h')!)], [1, -2, 2 ** -24, Infinity]);
  t.same([...toFloat32(tensors.get('b')!)], [1, -3]);
  t.same([...toFloat32(tensors.get('d')!)], [Math.fround(0.1)]);
});

/** Malformed and hostile files: [what, bytes, the error it must get]. */
function malformedCases(): [string, Uint8Array, RegExp][] {
  const good = encodeSafetensors(sample());
  return [
    ['empty file', new Uint8Array(0), /truncated: 0 bytes/],
    ['truncated length', good.subarray(0, 5), /truncated: 5 bytes/],
    ['truncated header', good.subarray(0, 30), /truncated: header says \d+ bytes/],
    ['truncated data', good.subarray(0, good.byteLength - 3), /reach past the data section/],
    ['huge header length', craft({}, undefined, 1n << 62n), /exceeds the \d+-byte limit/],
    ['header length 2^64 - 1', craft({}, undefined, (1n << 64n) - 1n), /exceeds the \d+-byte limit/],
    ['header over the limit', craft({}, undefined, BigInt(MAX_HEADER_BYTES + 1)), /exceeds/],
    ['header at the limit, past the end', craft({}, undefined, BigInt(MAX_HEADER_BYTES)), /truncated: header says 104857600 bytes but the file has 2/],
    ['not JSON', craft('{"a": '), /not valid UTF-8 JSON/],
    ['not UTF-8', craft(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')), /not valid UTF-8 JSON|not a JSON object|unsupported/],
    ['JSON array', craft([1, 2]), /not a JSON object/],
    ['JSON null', craft('null'), /not a JSON object/],
    ['bad dtype', craft({ x: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /'x': unsupported dtype "Q7"/],
    ['negative dim', craft({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /'x': shape \[-1\]/],
    ['fractional dim', craft({ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), /not a list of non-negative integers/],
    ['dim past 2^53', craft({ x: { dtype: 'F32', shape: [1e20], data_offsets: [0, 4] } }, new Uint8Array(4)), /not a list of non-negative integers/],
    ['offsets not a pair', craft({ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)), /is not \[begin, end\]/],
    ['backwards offsets', craft({ x: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /run backwards/],
    ['size mismatch', craft({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(8)), /needs 8 bytes but data_offsets span 4/],
    ['wrong dtype size', craft({ x: { dtype: 'F16', shape: [3], data_offsets: [0, 12] } }, new Uint8Array(12)), /F16\[3\] needs 6 bytes but data_offsets span 12/],
    ['huge shape', craft({ x: { dtype: 'F32', shape: [1e15, 1e15], data_offsets: [0, 4] } }, new Uint8Array(4)), /needs .* bytes but data_offsets span 4/],
    ['past the end', craft({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /reach past the data section/],
    ['offset far past the end', craft({ x: { dtype: 'U8', shape: [1], data_offsets: [2 ** 53 - 2, 2 ** 53 - 1] } }, new Uint8Array(8)), /reach past the data section/],
    [
      'overlap',
      craft({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)),
      /'y' overlaps 'x'/,
    ],
    [
      'same span twice',
      craft({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /overlaps/,
    ],
    ['metadata not strings', craft({ __metadata__: { a: 1 } }), /__metadata__.a is not a string/],
    ['metadata not an object', craft({ __metadata__: [] }), /__metadata__ is not an object/],
    ['entry not an object', craft({ x: 5 }), /entry 'x' is not an object/],
  ];
}

/** The error `fn` throws (fails the test when it throws none). */
function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

t.test('a malformed file gets an error naming the problem', async (t) => {
  for (const [what, bytes, re] of malformedCases()) {
    const path = join(dir, `bad-${what.replace(/\W+/g, '_')}.safetensors`);
    writeFileSync(path, bytes);
    t.throws(() => readSafetensors(path), re, what);
  }
  t.throws(() => readSafetensors(join(dir, 'rt.safetensors'), 10), /exceeds the 10-byte limit/, 'file size cap');
});

t.test('malformed bytes get the same error from an ArrayBuffer or a view as from a file', async (t) => {
  for (const [what, bytes, re] of malformedCases()) {
    const path = join(dir, `same-${what.replace(/\W+/g, '_')}.safetensors`);
    writeFileSync(path, bytes);
    const fromFile = errorOf(() => readSafetensors(path));
    // a fresh ArrayBuffer holding exactly the file (what a page gets from File.arrayBuffer())
    const buffer = bytes.slice().buffer;
    const fromBuffer = errorOf(() => decodeSafetensors(buffer, path));
    // a view at an odd offset into a larger buffer: the length is read from the view, not the buffer
    const big = new Uint8Array(bytes.byteLength + 11).fill(0xff);
    big.set(bytes, 3);
    const fromView = errorOf(() => decodeSafetensors(big.subarray(3, 3 + bytes.byteLength), path));
    t.ok(fromFile instanceof SafetensorsError && fromBuffer instanceof SafetensorsError && fromView instanceof SafetensorsError, `${what}: SafetensorsError each time`);
    t.match(fromBuffer.message, re, what);
    t.equal(fromBuffer.message, fromFile.message, `${what}: ArrayBuffer error = file error`);
    t.equal(fromView.message, fromFile.message, `${what}: view error = file error`);
  }
  t.throws(() => decodeSafetensors(new ArrayBuffer(3), 'picked.safetensors'), /^picked\.safetensors: truncated: 3 bytes/, 'the source names the data');
  t.throws(() => decodeSafetensors(new ArrayBuffer(3)), /^safetensors data: truncated/, 'a default source');
});

t.test('decoding reads an ArrayBuffer and a view at any offset alike', async (t) => {
  const bytes = encodeSafetensors(sample(), { format: 'pt' });
  t.equal(bytes.byteOffset, 0);
  const fromBuffer = decodeSafetensors(bytes.slice().buffer);
  const big = new Uint8Array(bytes.byteLength + 8);
  big.set(bytes, 5);
  const fromView = decodeSafetensors(big.subarray(5, 5 + bytes.byteLength));
  for (const parsed of [fromBuffer, fromView]) {
    t.same(parsed.metadata, { format: 'pt' });
    t.same([...parsed.tensors.keys()], ['a.weight', 'step', 'idx', 'empty']);
    t.same([...parsed.tensors.get('a.weight')!.bytes], [...new Uint8Array(sample()['a.weight'].data.buffer)]);
    t.same([...new Uint32Array(parsed.tensors.get('idx')!.bytes.slice().buffer)], [0, 7, 4294967295]);
  }
  // the header is the JSON padded with spaces to 8-byte alignment, as before (Buffer-free now)
  const hl = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + hl));
  t.equal((8 + hl) % 8, 0);
  t.match(header, /^\{.*\} *$/);
  t.equal(JSON.parse(header).__metadata__.format, 'pt');
});

t.test('the byte modules are platform-free: no Node modules, Buffer or process', async (t) => {
  for (const file of ['model/safetensors.ts', 'model/checkpoint.ts']) {
    // code only: comments may mention anything
    const code = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    t.notMatch(code, /from '(node:[^']*|fs|path|crypto|os)'/, `${file} imports no Node module`);
    t.notMatch(code, /\bBuffer\b/, `${file} uses no Buffer`);
    t.notMatch(code, /\bprocess\b/, `${file} uses no process`);
    t.notMatch(code, /\brequire\(/, `${file} uses no require`);
  }
});

t.test('an interrupted write leaves the old file intact', async (t) => {
  const path = join(dir, 'keep.safetensors');
  writeSafetensors(path, sample());
  const before = readFileSync(path);
  t.throws(() => writeSafetensors(path, { x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), /8 bytes of data for F32\[3\]/);
  t.same(readFileSync(path), before, 'old checkpoint untouched');
});

// the safetensors package when installed, else test/torch/st_io.py's reader and writer
torchTest(t, 'PyTorch reads our files and we read PyTorch\'s', async (t: Test, { python }: TorchPython) => {
  const ours = join(dir, 'ours.safetensors');
  writeSafetensors(ours, { w: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } }, { format: 'pt' });
  const theirs = join(dir, 'theirs.safetensors');
  const py = spawnSync(python, ['-c', `
import torch, sys
sys.path.insert(0, ${JSON.stringify(TORCH_DIR)})
from st_io import load_file, save_file
w = load_file(sys.argv[1])["w"]
assert w.shape == (2, 2) and w.dtype == torch.float32, w
print(float(w.sum()))
save_file({"conv.weight": torch.arange(6, dtype=torch.float32).reshape(1, 2, 3) / 4, "n": torch.tensor([5], dtype=torch.int64)}, sys.argv[2])
`, ours, theirs], { encoding: 'utf8' });
  t.equal(py.status, 0, py.stderr);
  t.equal(py.stdout.trim(), '10.0');
  t.ok(existsSync(theirs));
  const { tensors } = readSafetensors(theirs);
  t.same(tensors.get('conv.weight')!.shape, [1, 2, 3]);
  t.same([...toFloat32(tensors.get('conv.weight')!)], [0, 0.25, 0.5, 0.75, 1, 1.25]);
  t.equal(tensors.get('n')!.dtype, 'I64');
});
