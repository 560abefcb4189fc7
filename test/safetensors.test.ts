// safetensors reading and writing: a bit-exact round trip, every malformed-file case gets an
// error that names the problem, and (when torch is installed) files cross over to PyTorch.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAX_HEADER_BYTES,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  toFloat32,
  writeSafetensors,
} from '../model/safetensors.js';

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

t.test('a malformed file gets an error naming the problem', async (t) => {
  const good = encodeSafetensors(sample());
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /truncated: 0 bytes/],
    ['truncated length', good.subarray(0, 5), /truncated: 5 bytes/],
    ['truncated header', good.subarray(0, 30), /truncated: header says \d+ bytes/],
    ['truncated data', good.subarray(0, good.byteLength - 3), /reach past the data section/],
    ['huge header length', craft({}, undefined, 1n << 62n), /exceeds the \d+-byte limit/],
    ['header over the limit', craft({}, undefined, BigInt(MAX_HEADER_BYTES + 1)), /exceeds/],
    ['not JSON', craft('{"a": '), /not valid UTF-8 JSON/],
    ['not UTF-8', craft(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')), /not valid UTF-8 JSON|not a JSON object|unsupported/],
    ['JSON array', craft([1, 2]), /not a JSON object/],
    ['bad dtype', craft({ x: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /'x': unsupported dtype "Q7"/],
    ['negative dim', craft({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /'x': shape \[-1\]/],
    ['fractional dim', craft({ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), /not a list of non-negative integers/],
    ['offsets not a pair', craft({ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)), /is not \[begin, end\]/],
    ['backwards offsets', craft({ x: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /run backwards/],
    ['size mismatch', craft({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(8)), /needs 8 bytes but data_offsets span 4/],
    ['huge shape', craft({ x: { dtype: 'F32', shape: [1e15, 1e15], data_offsets: [0, 4] } }, new Uint8Array(4)), /needs .* bytes but data_offsets span 4/],
    ['past the end', craft({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)), /reach past the data section/],
    [
      'overlap',
      craft({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)),
      /'y' overlaps 'x'/,
    ],
    ['metadata not strings', craft({ __metadata__: { a: 1 } }), /__metadata__.a is not a string/],
    ['entry not an object', craft({ x: 5 }), /entry 'x' is not an object/],
  ];
  for (const [what, bytes, re] of cases) {
    const path = join(dir, `bad-${what.replace(/\W+/g, '_')}.safetensors`);
    writeFileSync(path, bytes);
    t.throws(() => readSafetensors(path), re, what);
  }
  t.throws(() => readSafetensors(join(dir, 'rt.safetensors'), 10), /exceeds the 10-byte limit/, 'file size cap');
});

t.test('an interrupted write leaves the old file intact', async (t) => {
  const path = join(dir, 'keep.safetensors');
  writeSafetensors(path, sample());
  const before = readFileSync(path);
  t.throws(() => writeSafetensors(path, { x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), /8 bytes of data for F32\[3\]/);
  t.same(readFileSync(path), before, 'old checkpoint untouched');
});

const torch = spawnSync('python3', ['-c', 'import torch, safetensors'], { encoding: 'utf8' });
t.test('PyTorch reads our files and we read PyTorch\'s', { skip: torch.status !== 0 ? 'torch and safetensors are not installed for python3' : false }, async (t) => {
  const ours = join(dir, 'ours.safetensors');
  writeSafetensors(ours, { w: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } }, { format: 'pt' });
  const theirs = join(dir, 'theirs.safetensors');
  const py = spawnSync('python3', ['-c', `
import torch, sys
from safetensors.torch import load_file, save_file
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
