// PyTorch .pt files: the restricted unpickler reads what a state_dict needs (ordered dicts,
// tensor rebuild calls, typed storages, parameters; contiguous or strided; float16, bfloat16
// and float64 converted with a warning; a whole training checkpoint's model state_dict under
// its key), and refuses a corpus of hostile files, each with the reason, before it allocates
// anything: code-running pickles, pickled modules, legacy and big-endian files, truncated
// zips, zip bombs, oversized sizes. Files are built byte by byte (test/pt_build.ts): no
// Python needed. Real torch-written files are checked in torch_interop.test.ts.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gpu } from './helpers.js';
import { rt } from '../engine/runtime.js';
import { memory } from '../engine/tensor.js';
import { CheckpointError, convertStateDict, encodeCheckpoint, modelFromCheckpointBytes, stateLayout } from '../model/checkpoint.js';
import { decodeSafetensors } from '../model/safetensors.js';
import { toScheme } from '../model/names.js';
import { PtError, decodePt } from '../model/torch_pt.js';
import { VqVae } from '../model/vqvae.js';
import { Pickle, type TensorSpec, concat, f32Bytes, parameter, ptArchive, zip } from './pt_build.js';

const dir = mkdtempSync(join(tmpdir(), 'vq-pt-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (b: Uint8Array) => [...new Float32Array(b.slice().buffer)];
const enc = new TextEncoder();

/** A one-tensor state_dict archive around a pickle tail (what follows the dict's first item). */
function simple(): Uint8Array {
  const pkl = new Pickle().proto().stateDict([['w', { key: '0', numel: 6, size: [2, 3] }]]).stop().done();
  return ptArchive(pkl, { '0': f32Bytes([0, 1, 2, 3, 4, 5]) });
}

t.test('a state_dict: contiguous, strided, offset, shared storage, parameters, 0-d and empty tensors', async (t) => {
  const storage = f32Bytes(Array.from({ length: 12 }, (_, i) => i));
  const p = new Pickle().proto().orderedDict().mark();
  p.str('a').tensor({ key: '0', numel: 12, size: [3, 4] });
  p.str('transposed').tensor({ key: '0', numel: 12, size: [4, 3], stride: [1, 4] });
  p.str('sliced').tensor({ key: '0', numel: 12, offset: 5, size: [2, 2], stride: [4, 1] });
  p.str('broadcast').tensor({ key: '0', numel: 12, offset: 2, size: [2, 3], stride: [0, 1] });
  p.str('param');
  parameter(p, { key: '1', numel: 2, size: [2] });
  p.str('scalar').tensor({ key: '2', numel: 1, size: [] });
  p.str('empty').tensor({ key: '3', numel: 0, size: [0, 5] });
  const file = ptArchive(p.setitems().stop().done(), { '0': storage, '1': f32Bytes([7, 8]), '2': f32Bytes([9.5]), '3': new Uint8Array(0) });
  const sd = decodePt(file, 'x.pt');
  t.equal(sd.key, null);
  t.same(sd.warnings, []);
  t.same([...sd.tensors.keys()], ['a', 'transposed', 'sliced', 'broadcast', 'param', 'scalar', 'empty'], 'order kept');
  t.same(f32(sd.tensors.get('a')!.bytes), [...Array(12).keys()]);
  t.same(f32(sd.tensors.get('transposed')!.bytes), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], 'strided: gathered row-major');
  t.same(f32(sd.tensors.get('sliced')!.bytes), [5, 6, 9, 10]);
  t.same(f32(sd.tensors.get('broadcast')!.bytes), [2, 3, 4, 2, 3, 4], 'stride 0');
  t.same(f32(sd.tensors.get('param')!.bytes), [7, 8], 'nn.Parameter');
  t.same(sd.tensors.get('scalar')!.shape, []);
  t.same(f32(sd.tensors.get('scalar')!.bytes), [9.5]);
  t.same(sd.tensors.get('empty')!.shape, [0, 5]);
  t.equal(sd.tensors.get('a')!.dtype, 'F32');
});

t.test('float16, bfloat16 and float64 are converted to float32 with a warning; int64 kept', async (t) => {
  const p = new Pickle().proto().stateDict([
    ['h', { key: '0', storageType: 'HalfStorage', numel: 3, size: [3] }],
    ['b', { key: '1', storageType: 'BFloat16Storage', numel: 2, size: [2] }],
    ['d', { key: '2', storageType: 'DoubleStorage', numel: 1, size: [1] }],
    ['n', { key: '3', storageType: 'LongStorage', numel: 1, size: [] }],
  ]);
  const file = ptArchive(p.stop().done(), {
    '0': new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7c00]).buffer),
    '1': new Uint8Array(new Uint16Array([0x3f80, 0xc040]).buffer),
    '2': new Uint8Array(new Float64Array([0.1]).buffer),
    '3': new Uint8Array(new BigInt64Array([42n]).buffer),
  });
  const sd = decodePt(file, 'half.pt');
  t.same(f32(sd.tensors.get('h')!.bytes), [1, -2, Infinity]);
  t.same(f32(sd.tensors.get('b')!.bytes), [1, -3]);
  t.same(f32(sd.tensors.get('d')!.bytes), [Math.fround(0.1)]);
  t.equal(sd.tensors.get('n')!.dtype, 'I64');
  t.match(sd.warnings.join('\n'), /half\.pt: 1 float16 tensor converted to float32 \(h\)/);
  t.match(sd.warnings.join('\n'), /1 bfloat16 tensor converted/);
  t.match(sd.warnings.join('\n'), /1 float64 tensor converted/);
});

t.test("a whole training checkpoint yields its model's state_dict, naming the key", async (t) => {
  const p = new Pickle().proto().emptyDict().mark();
  p.str('epoch').int(7);
  p.str('best_loss').float(0.25);
  p.str('optimizer').emptyDict().mark();
  p.str('state').emptyDict().mark().int(0).emptyDict().mark().str('exp_avg').tensor({ key: '1', numel: 2, size: [2] }).setitems().setitems();
  p.str('param_groups').emptyList().mark().emptyDict().mark().str('lr').float(1e-3).str('betas').mark().float(0.9).float(0.999).tuple().str('foreach').none().setitems().raw(0x65); // APPENDS
  p.setitems();
  p.str('model').stateDict([['w', { key: '0', numel: 2, size: [2] }]]);
  const file = ptArchive(p.setitems().stop().done(), { '0': f32Bytes([1, 2]), '1': f32Bytes([0, 0]) });
  const sd = decodePt(file, 'ckpt.pt');
  t.equal(sd.key, 'model');
  t.same([...sd.tensors.keys()], ['w']);
  t.same(f32(sd.tensors.get('w')!.bytes), [1, 2]);
});

/** One hostile file: its bytes, and what the refusal must say. */
type Case = [what: string, bytes: Uint8Array, re: RegExp];

function hostileCorpus(): Case[] {
  const cases: Case[] = [];
  const callGlobal = (module: string, name: string, arg = 'echo pwned > /tmp/pwned') =>
    ptArchive(new Pickle().proto().global(module, name).mark().str(arg).tuple().reduce().stop().done(), {});
  // code that would run on load, by every route a pickle has
  cases.push(['os.system', callGlobal('os', 'system'), /refused global 'os\.system': a callable that would run code on load: this reader executes nothing/]);
  cases.push(['posix.system', callGlobal('posix', 'system'), /refused global 'posix\.system'/]);
  cases.push(['subprocess.Popen', callGlobal('subprocess', 'Popen'), /refused global 'subprocess\.Popen'/]);
  cases.push(['builtins.eval via STACK_GLOBAL (protocol 4)', ptArchive(new Pickle().proto(4).stackGlobal('builtins', 'eval').mark().str('1+1').tuple().reduce().stop().done(), {}), /refused global 'builtins\.eval'/]);
  cases.push(['builtins.exec', callGlobal('builtins', 'exec'), /refused global 'builtins\.exec'/]);
  cases.push(['torch.load', callGlobal('torch', 'load'), /refused global 'torch\.load': any other callable is refused/]);
  cases.push(['webbrowser.open', callGlobal('webbrowser', 'open'), /refused global 'webbrowser\.open'/]);
  {
    // the callable after a valid tensor: still refused, and the tensor never copied
    const p = new Pickle().proto().orderedDict().mark().str('w').tensor({ key: '0', numel: 2, size: [2] });
    p.str('x').global('os', 'system').mark().str('id').tuple().reduce().setitems().stop();
    cases.push(['os.system after a tensor', ptArchive(p.done(), { '0': f32Bytes([1, 2]) }), /refused global 'os\.system'/]);
  }
  // whole objects instead of a state_dict
  cases.push(['pickled nn.Module (__main__.Model)', ptArchive(new Pickle().proto().global('__main__', 'Model').raw(0x29, 0x81).stop().done(), {}), /refused global '__main__\.Model': a pickled nn\.Module \(torch\.save\(model\)\): save model\.state_dict\(\) instead/]);
  cases.push(['pickled torch.nn.Conv2d', ptArchive(new Pickle().proto().global('torch.nn.modules.conv', 'Conv2d').raw(0x29, 0x81).stop().done(), {}), /refused global 'torch\.nn\.modules\.conv\.Conv2d': a pickled nn\.Module/]);
  cases.push(['a user class', ptArchive(new Pickle().proto().global('mylib.nets', 'VQVAE').raw(0x29, 0x81).stop().done(), {}), /refused global 'mylib\.nets\.VQVAE': a pickled object .*state_dict\(\)/]);
  cases.push(['TorchScript', ptArchive(new Pickle().proto().global('__torch__', 'Model').raw(0x29, 0x81).stop().done(), {}), /refused global '__torch__\.Model': a TorchScript archive/]);
  cases.push(['numpy scalar', ptArchive(new Pickle().proto().global('numpy.core.multiarray', 'scalar').mark().tuple().reduce().stop().done(), {}), /refused global 'numpy\.core\.multiarray\.scalar': a numpy object/]);
  // allowed globals misused
  cases.push(['OrderedDict with arguments', ptArchive(new Pickle().proto().global('collections', 'OrderedDict').mark().str('x').tuple().reduce().stop().done(), {}), /OrderedDict\(\.\.\.\) with arguments/]);
  cases.push(['a storage called', ptArchive(new Pickle().proto().global('torch', 'FloatStorage').emptyTuple().reduce().stop().done(), {}), /torch\.FloatStorage cannot be called/]);
  cases.push(['calling a string', ptArchive(new Pickle().proto().str('os.system').emptyTuple().reduce().stop().done(), {}), /pickle calls a string: only known globals are callable/]);
  {
    const p = new Pickle().proto().tensor({ key: '0', numel: 2, size: [2] }).emptyDict().raw(0x62).stop(); // BUILD on a tensor
    cases.push(['BUILD on a tensor', ptArchive(p.done(), { '0': f32Bytes([1, 2]) }), /pickle BUILD on a tensor/]);
  }
  // opcodes a state_dict never needs (INST, OBJ, NEWOBJ, EXT1, PERSID, protocol-0 INT)
  for (const [name, op] of [['INST', 0x69], ['OBJ', 0x6f], ['NEWOBJ', 0x81], ['EXT1', 0x82], ['PERSID', 0x50], ['INT', 0x49]] as const) {
    cases.push([`opcode ${name}`, ptArchive(new Pickle().proto().mark().raw(op).stop().done(), {}), new RegExp(`unsupported pickle opcode 0x${op.toString(16)}`)]);
  }
  // legacy and foreign formats
  cases.push(['legacy pickle (PyTorch < 1.6)', new Pickle().proto().big(0x1950a86a20f9469cfc6cn).stop().done(), /legacy torch\.save format \(PyTorch < 1\.6/]);
  {
    const tar = new Uint8Array(1024);
    tar.set(enc.encode('ustar'), 257);
    cases.push(['legacy tar', tar, /legacy tar format/]);
  }
  cases.push(['not a zip', enc.encode('hello, world'), /not a torch\.save zip archive/]);
  cases.push(['empty file', new Uint8Array(0), /not a torch\.save zip archive/]);
  cases.push(['big-endian', ptArchive(new Pickle().proto().stateDict([['w', { key: '0', numel: 1, size: [1] }]]).stop().done(), { '0': f32Bytes([1]) }, { byteorder: 'big' }), /byte order 'big': only little-endian/]);
  cases.push(['a zip without data.pkl', zip([{ name: 'x/readme', data: enc.encode('hi') }]), /no <name>\/data\.pkl record/]);
  cases.push(['two data.pkl', zip([{ name: 'a/data.pkl', data: new Pickle().proto().none().stop().done() }, { name: 'b/data.pkl', data: new Pickle().proto().none().stop().done() }]), /2 data\.pkl records/]);
  // truncated archives
  const good = simple();
  cases.push(['truncated to half', good.subarray(0, good.byteLength >> 1), /truncated zip archive: no end-of-central-directory/]);
  cases.push(['truncated end record', good.subarray(0, good.byteLength - 10), /truncated zip archive/]);
  {
    // a consistent zip whose pickle stops early
    const pkl = new Pickle().proto().stateDict([['w', { key: '0', numel: 6, size: [2, 3] }]]).stop().done();
    cases.push(['truncated pickle', ptArchive(pkl.subarray(0, 40), { '0': f32Bytes([0, 1, 2, 3, 4, 5]) }), /pickle truncated at byte|pickle GLOBAL at byte \d+ is malformed/]);
  }
  {
    // central directory intact, the data it points at cut away
    const cdStart = good.byteLength - 22 - (46 + 'archive/data.pkl'.length) * 1 - (46 + 'archive/byteorder'.length) - (46 + 'archive/data/0'.length) - (46 + 'archive/version'.length);
    const cut = concat([good.subarray(0, 40), good.subarray(cdStart)]);
    cases.push(['entries cut out', cut, /central directory .* reaches past the end|local header .* missing|reaches past the end of the file/]);
  }
  // zip bombs: compressed entries are refused unread; sizes past the file are refused
  {
    const bomb = new Uint8Array(16 * 1024 * 1024); // 16 MB of zeros deflate to ~16 kB
    cases.push(['zip bomb (deflate)', zip([{ name: 'archive/data.pkl', data: bomb, method: 8 }]), /'archive\/data\.pkl' is compressed \(zip method 8\)/]);
    cases.push(['zip bomb claiming 4 GB', zip([{ name: 'archive/data.pkl', data: bomb.subarray(0, 1024), method: 8, size: 0xfffffffe }]), /is compressed/]);
  }
  cases.push(['stored entry larger than the file', zip([{ name: 'archive/data.pkl', data: new Uint8Array(8), size: 0x7fffffff, csize: 0x7fffffff }]), /reaches past the end of the file/]);
  {
    // zip64 end record claiming 2^53 entries
    const z = good.slice();
    const eocd = z.byteLength - 22;
    new DataView(z.buffer).setUint16(eocd + 10, 0xffff, true);
    cases.push(['zip64 without locator', z, /zip64 archive without its zip64 locator/]);
  }
  cases.push(['encrypted entry', zip([{ name: 'archive/data.pkl', data: new Pickle().proto().none().stop().done(), flags: 1 }]), /is encrypted/]);
  cases.push(['duplicate entries', zip([{ name: 'archive/data.pkl', data: new Pickle().proto().none().stop().done() }, { name: 'archive/data.pkl', data: new Uint8Array(1) }]), /appears twice/]);
  {
    const pkl = new Pickle().proto().stateDict([['w', { key: '0', numel: 2, size: [2] }]]).stop().done();
    const file = zip([{ name: 'archive/data.pkl', data: pkl }, { name: 'archive/data/0', data: f32Bytes([1, 2]), crc: 0x12345678 }]);
    cases.push(['CRC mismatch', file, /'archive\/data\/0': CRC-32 mismatch/]);
  }
  // oversized or inconsistent sizes: refused from the numbers alone
  const oneTensor = (spec: TensorSpec, storages: Record<string, Uint8Array> = { '0': f32Bytes([1, 2, 3, 4]) }) =>
    ptArchive(new Pickle().proto().stateDict([['w', spec]]).stop().done(), storages);
  cases.push(['size 2^40 on 4 elements', oneTensor({ key: '0', numel: 4, size: [2 ** 40], stride: [1] }), /reaches past its storage '0' of 4 elements/]);
  cases.push(['size 1e6 x 1e6', oneTensor({ key: '0', numel: 4, size: [1_000_000, 1_000_000] }), /reaches past its storage/]);
  cases.push(['stride past the storage', oneTensor({ key: '0', numel: 4, size: [2, 2], stride: [3, 1] }), /reaches past its storage/]);
  cases.push(['offset past the storage', oneTensor({ key: '0', numel: 4, offset: 4, size: [1] }), /reaches past its storage|outside its storage/]);
  cases.push(['negative size', oneTensor({ key: '0', numel: 4, size: [-1] }), /must be non-negative integers/]);
  cases.push(['storage numel 2^50 on 16 bytes', oneTensor({ key: '0', numel: 2n ** 50n, size: [4] }), /storage '0': 1125899906842624 float32 values need .* bytes, its entry has 16/]);
  cases.push(['storage numel 2^70', oneTensor({ key: '0', numel: 2n ** 70n, size: [4] }), /integer of 9 bytes .* too large/]);
  cases.push(['storage entry missing', oneTensor({ key: '5', numel: 4, size: [4] }), /storage '5' has no data\/5 entry/]);
  cases.push(['storage key escaping the archive', oneTensor({ key: '../../etc/passwd', numel: 4, size: [4] }), /has no data\/\.\.\/\.\.\/etc\/passwd entry/]);
  cases.push(['storage of the wrong size', oneTensor({ key: '0', numel: 4, size: [4] }, { '0': f32Bytes([1, 2, 3]) }), /its entry has 12/]);
  cases.push(['a bool tensor', oneTensor({ key: '0', storageType: 'BoolStorage', numel: 4, size: [4] }, { '0': new Uint8Array(4) }), /'w' is bool: only float and int32\/int64\/uint8 tensors are read/]);
  cases.push(['unknown storage type', oneTensor({ key: '0', storageType: 'QInt8Storage', numel: 4, size: [4] }), /refused global 'torch\.QInt8Storage'/]);
  {
    const p = new Pickle().proto().raw(0x58, 0xf0, 0xff, 0xff, 0xff).stop(); // BINUNICODE of 4 GB
    cases.push(['string length 4 GB', ptArchive(p.done(), {}), /pickle truncated at byte 7 \(needs 4294967280 more\)/]);
  }
  // malformed pickles
  cases.push(['memo never stored', ptArchive(new Pickle().proto().get(7).stop().done(), {}), /reads memo 7, never stored/]);
  cases.push(['stack underflow', ptArchive(new Pickle().proto().reduce().stop().done(), {}), /stack underflow/]);
  cases.push(['values left on the stack', ptArchive(new Pickle().proto().none().none().stop().done(), {}), /ends with 2 values/]);
  {
    // a list that contains itself, a million times over: linear memory, no hang, no state_dict
    const p = new Pickle().proto().emptyList().put(0);
    for (let i = 0; i < 1000; i++) p.get(0).raw(0x61); // APPEND
    cases.push(['self-referencing list', ptArchive(p.stop().done(), {}), /holds a list, not a state_dict/]);
  }
  cases.push(['no state_dict in the dict', ptArchive(new Pickle().proto().emptyDict().mark().str('epoch').int(3).str('model').str('resnet').setitems().stop().done(), {}), /no model state_dict in it: .*it holds \{"epoch": number, "model": string\}/]);
  return cases;
}

t.test('a corpus of hostile .pt files: each refused with its reason, quickly, nothing executed', async (t) => {
  const cases = hostileCorpus();
  const marker = '/tmp/pwned';
  rmSync(marker, { force: true });
  for (const [what, bytes, re] of cases) {
    const t0 = performance.now();
    let err: unknown = null;
    try {
      decodePt(bytes, `${what}.pt`);
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    t.ok(err instanceof PtError, `${what}: refused (${err instanceof Error ? err.message : 'accepted!'})`);
    if (err instanceof Error) t.match(err.message, re, `${what}: the reason`);
    t.ok(ms < 1000, `${what}: refused in ${ms.toFixed(1)} ms`);
  }
  t.notOk(spawnSync('test', ['-e', marker]).status === 0, 'no file was created by the code-running pickles');
  t.comment(`${cases.length} hostile files refused`);
});

t.test('a hostile .pt file reaches no GPU allocation when loaded as a model', async (t) => {
  await gpu(t);
  const pool = rt().pool;
  for (const [what, bytes, re] of hostileCorpus().filter(([w]) => /os\.system|size 2\^40|zip bomb \(deflate\)|pickled nn\.Module/.test(w))) {
    const before = memory();
    let acquires = 0;
    const acquire = pool.acquire;
    pool.acquire = (n, label) => {
      acquires++;
      return acquire.call(pool, n, label);
    };
    try {
      await t.rejects(modelFromCheckpointBytes(bytes, `${what}.pt`), CheckpointError, `${what}: a CheckpointError`);
      await t.rejects(modelFromCheckpointBytes(bytes, `${what}.pt`), re, `${what}: the reason`);
    } finally {
      pool.acquire = acquire;
    }
    t.equal(acquires, 0, `${what}: no GPU buffer acquired`);
    t.same(memory(), before, `${what}: GPU memory unchanged`);
  }
});

/** Our model's state_dict as a .pt archive built here, under `scheme`'s names, optionally wrapped in a training checkpoint. */
async function modelAsPt(m: VqVae, scheme: 'seed' | 'zalando', wrapKey: string | null): Promise<Uint8Array> {
  const p = new Pickle().proto();
  if (wrapKey) p.emptyDict().mark().str('epoch').int(3).str(wrapKey);
  p.orderedDict().mark();
  const storages: Record<string, Uint8Array> = {};
  let k = 0;
  for (const [name, tensor] of m.state) {
    const key = String(k++);
    storages[key] = f32Bytes((await tensor.read()) as Float32Array);
    p.str(toScheme(name, scheme));
    parameter(p, { key, numel: tensor.size, size: [...tensor.shape] });
  }
  p.setitems();
  if (wrapKey) p.setitems();
  return ptArchive(p.stop().done(), storages, { prefix: 'model' });
}

t.test('a VQ-VAE .pt loads under either naming scheme, from a state_dict or a training checkpoint; convert writes safetensors', async (t) => {
  await gpu(t);
  const tiny = { hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8 };
  const m = new VqVae(tiny, { seed: 3 });
  const want = new Map<string, number[]>();
  for (const [n, p] of m.state) want.set(n, [...((await p.read()) as Float32Array)]);
  for (const scheme of ['seed', 'zalando'] as const) {
    for (const wrap of [null, 'state_dict', 'model'] as const) {
      const bytes = await modelAsPt(m, scheme, wrap);
      const warnings: string[] = [];
      const { model, info } = await modelFromCheckpointBytes(bytes, 'm.pt', { onWarning: (w) => warnings.push(w) });
      t.equal(info.names, scheme, `${scheme}, ${wrap}: scheme detected`);
      t.equal(info.format, 'pt');
      t.equal(info.key, wrap, `${scheme}, ${wrap}: the key used`);
      if (wrap) t.match(warnings.join('\n'), new RegExp(`under its key '${wrap}'`), 'the key is named');
      t.same(model.config, m.config, `${scheme}, ${wrap}: architecture read off the shapes`);
      for (const [n, p] of model.state) t.same([...((await p.read()) as Float32Array)], want.get(n), `${scheme}, ${wrap}: ${n}`);
      model.dispose();
    }
  }
  // convert: either scheme in, either out; the output loads like our own checkpoints
  const pt = await modelAsPt(m, 'zalando', 'model');
  for (const names of [undefined, 'seed', 'zalando'] as const) {
    const r = convertStateDict(pt, 'in.pt', { names, onWarning: () => {} });
    t.equal(r.names, names ?? 'zalando', `convert --names ${names}: scheme written`);
    const st = decodeSafetensors(r.bytes);
    t.same([...st.tensors.keys()], [...stateLayout(m.config).keys()].map((n) => toScheme(n, r.names!)), 'every tensor, in state_dict order');
    t.same(JSON.parse(st.metadata['vqvae.config']), m.config, 'the config in the metadata');
    const { model } = await modelFromCheckpointBytes(r.bytes, 'out.safetensors');
    for (const [n, p] of model.state) t.same([...((await p.read()) as Float32Array)], want.get(n), `converted: ${n}`);
    model.dispose();
  }
  // the convert command, end to end
  const inPath = join(dir, 'm.pt');
  writeFileSync(inPath, pt);
  const out = join(dir, 'm.safetensors');
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'scripts/convert.ts', ...args], { encoding: 'utf8' });
  let r = run(inPath, out, '--names', 'seed');
  t.equal(r.status, 0, `npm run convert: ${r.stderr}`);
  t.match(r.stdout, /23 tensors of the VQ-VAE \(the state_dict under key 'model'\) under the seed names/);
  t.ok(decodeSafetensors(new Uint8Array(readFileSync(out))).tensors.has('vq_vae.embedding.weight'));
  r = run(inPath, out);
  t.equal(r.status, 2, 'an existing output is not replaced without --overwrite');
  t.match(r.stderr, /exists \(pass --overwrite/);
  const evil = join(dir, 'evil.pt');
  writeFileSync(evil, hostileCorpus()[0][1]);
  r = run(evil, join(dir, 'evil.safetensors'));
  t.equal(r.status, 1, 'a hostile file: exit 1');
  t.match(r.stderr, /refused global 'os\.system'/);
  t.equal(run('--help').status, 0, '--help');
  // a .pt whose names follow neither scheme is refused with the names that did not match
  const other = ptArchive(new Pickle().proto().stateDict([['fc.weight', { key: '0', numel: 2, size: [2] }]]).stop().done(), { '0': f32Bytes([1, 2]) });
  await t.rejects(modelFromCheckpointBytes(other, 'resnet.pt'), /resnet\.pt: the state_dict's names follow neither the seed repository's scheme .* fc\.weight/);
  m.dispose();
});

t.test('the .pt and naming modules are platform-free: no Node modules, Buffer or process', async (t) => {
  for (const file of ['model/torch_pt.ts', 'model/names.ts']) {
    const code = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    t.notMatch(code, /from '(node:[^']*|fs|path|crypto|os|zlib)'/, `${file} imports no Node module`);
    t.notMatch(code, /\bBuffer\b/, `${file} uses no Buffer`);
    t.notMatch(code, /\bprocess\b/, `${file} uses no process`);
    t.notMatch(code, /\brequire\(/, `${file} uses no require`);
  }
});

t.test('encodeCheckpoint writes the seed names by default and zalando names when asked', async (t) => {
  await gpu(t);
  const m = new VqVae({ hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8 });
  const seed = decodeSafetensors((await encodeCheckpoint(m, { step: 0 })).model);
  t.ok(seed.tensors.has('encoder.residual.layers.1.res_block.3.weight'));
  t.ok(seed.tensors.has('decoder.trans_conv2.bias'));
  t.equal(seed.metadata['vqvae.names'], 'seed');
  const z = decodeSafetensors((await encodeCheckpoint(m, { step: 0, names: 'zalando' })).model);
  t.ok(z.tensors.has('_encoder._residual_stack._layers.1._block.3.weight'));
  t.equal(z.metadata['vqvae.names'], 'zalando');
  await t.rejects(encodeCheckpoint(m, { step: 0, names: 'keras' as never }), /names must be one of seed, zalando/);
  m.dispose();
});

t.test('old checkpoints (zalando names, no names metadata) resume exactly, optimiser state included; seed-named ones too', async (t) => {
  await gpu(t);
  const { Adam } = await import('../engine/optim.js');
  const { backward } = await import('../engine/autograd.js');
  const { randn, tidy } = await import('../engine/tensor.js');
  const { loadCheckpointBytes } = await import('../model/checkpoint.js');
  const { encodeSafetensors } = await import('../model/safetensors.js');
  const tiny = { hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8 };
  const m = new VqVae(tiny, { seed: 8 });
  const opt = new Adam(m.parameters(), { lr: 1e-3 });
  const x = randn([2, 3, 32, 32], { std: 0.3 });
  tidy(() => backward(m.forward(x, { train: true }).loss));
  opt.step();
  x.dispose();
  const want = await opt.state();
  for (const names of ['zalando', 'seed'] as const) {
    const bytes = await encodeCheckpoint(m, { step: 1, optimizer: opt, train: { a: 1 }, names });
    let modelBytes = bytes.model;
    if (names === 'zalando') {
      // as written before the naming option existed: no 'vqvae.names'
      const st = decodeSafetensors(modelBytes);
      const { 'vqvae.names': _, ...meta } = st.metadata;
      modelBytes = encodeSafetensors(Object.fromEntries([...st.tensors].map(([n, v]) => [n, { dtype: v.dtype, shape: v.shape, data: v.bytes.slice() }])), meta);
      t.ok(st.tensors.has('_vq_vae._embedding.weight'));
    }
    const m2 = new VqVae(tiny, { seed: 9 });
    const opt2 = new Adam(m2.parameters(), { lr: 1e-3 });
    const info = await loadCheckpointBytes(modelBytes, m2, { trainBytes: bytes.train, optimizer: opt2 });
    t.equal(info.names, names);
    for (const [n, p] of m.state) t.same([...((await m2.state.get(n)!.read()) as Float32Array)], [...((await p.read()) as Float32Array)], `${names}: ${n}`);
    const got = await opt2.state();
    t.same(got.params.map((p) => p && [p.step, [...p.m], [...p.v]]), want.params.map((p) => p && [p.step, [...p.m], [...p.v]]), `${names}: Adam's moments and steps`);
    opt2.dispose();
    m2.dispose();
  }
  opt.dispose();
  m.dispose();
});
