// The kernel factory and parameter blocks (engine/kernel.ts), and the WGSL dump of flag
// dumpWgsl (VQ_DUMP_WGSL): engine/node.ts writes every compiled kernel through the runtime's
// onKernelSource hook.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu } from './helpers.js';
import { withFlags } from '../engine/flags.js';
import { dimWords, kernel, paramBlock, shaderKernel, specKey } from '../engine/kernel.js';
import { matmul } from '../engine/matmul.js';
import { tensor } from '../engine/tensor.js';

t.test('kernel(): the cache key comes from the specialisation values, one Kernel per key', async (t) => {
  t.equal(specKey('g', { b: 2, a: 'x', c: true }), 'g|a=x|b=2|c=true', 'values by sorted name');
  t.equal(specKey('g', { c: true, b: 2, a: 'x' }), specKey('g', { a: 'x', b: 2, c: true }), 'order-free');
  let built = 0;
  const code = (s: { n: number }) => `// n = ${s.n} (${++built})`;
  const a = kernel('test.factory', { n: 1 }, code);
  t.equal(kernel('test.factory', { n: 1 }, code), a, 'the same specialisation: the same object');
  t.not(kernel('test.factory', { n: 2 }, code), a);
  t.equal(a.name, 'test.factory');
  t.equal(built, 0, 'WGSL is built lazily');
  t.equal(a.code(), '// n = 1 (1)');
  const s = shaderKernel('fill', 'missing-section-is-an-error', {});
  t.throws(() => s.code(), /shaders\/fill.wgsl has no kernel 'missing-section-is-an-error'/);
});

t.test('paramBlock: the WGSL struct and the packing, by name', async (t) => {
  const p = paramBlock({ n: 'u32', s: 'f32', o: 'i32', flag: 'u32' });
  t.equal(p.wgsl, 'struct Params { n: u32, s: f32, o: i32, flag: u32 }');
  const u = p.pack({ n: 7, s: 0.5, o: -3, flag: true });
  t.same([...u], [7, 0x3f000000, 0xfffffffd, 1]);
  t.throws(() => p.pack({ n: 1, s: 1, o: 1 } as never), /paramBlock: no value for flag/);

  const wide = paramBlock({ n: 'u32', _p0: 'u32', _p1: 'u32', _p2: 'u32', shape: 'array<vec4u, 2>', st: 'array<vec4u, 2>' }, 4);
  t.equal(wide.wgsl, 'struct Params {\n  n: u32, _p0: u32, _p1: u32, _p2: u32,\n  shape: array<vec4u, 2>, st: array<vec4u, 2>,\n}');
  const w = wide.pack({ n: 9, shape: dimWords([3, 4]), st: [4, 1] });
  t.equal(w.length, 20, '4 scalars and two arrays of 8 words');
  t.same([...w], [9, 0, 0, 0, 3, 4, 1, 1, 1, 1, 1, 1, 4, 1, 0, 0, 0, 0, 0, 0], 'padding is 0, dimWords pads dims with 1');
  t.throws(() => wide.pack({ n: 1, shape: new Array(9).fill(1), st: [] }), /9 values for shape, which holds 8/);
  t.throws(() => paramBlock({ n: 'u32', a: 'array<vec4u, 1>' }), /array field a at byte 4, not a multiple of 16/);
  t.throws(() => dimWords(new Array(9).fill(1)), /9 values for 8 words/);
});

t.test('flag dumpWgsl writes each compiled kernel once, with its cache key', async (t) => {
  const r = await gpu(t);
  const dir = mkdtempSync(join(tmpdir(), 'vq-dump-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const seen: string[] = [];
  const writer = r.onKernelSource!;
  t.ok(writer, 'engine/node.ts installed the writer');
  r.onKernelSource = (k, code) => {
    seen.push(k.key);
    writer(k, code);
  };
  t.teardown(() => {
    r.onKernelSource = writer;
  });
  const a = tensor(new Float32Array(12).fill(1), [3, 4]);
  const b = tensor(new Float32Array(20).fill(2), [4, 5]);
  await matmul(a, b).read(); // nothing is dumped without the flag
  t.same(readdirSync(dir), []);
  seen.length = 0;
  await withFlags({ dumpWgsl: dir, matmulTile: '16x4' }, async () => {
    const y = matmul(a, b);
    t.same([...(await y.read())], new Array(15).fill(8));
    matmul(a, b).dispose(); // cached: not written again
  });
  const files = readdirSync(dir).sort();
  t.equal(files.length, 2, files.join(', '));
  const index = readFileSync(join(dir, 'kernels.tsv'), 'utf8').trim().split('\n').map((l) => l.split('\t'));
  t.equal(index.length, 1, 'one kernel compiled under the flag');
  const [file, key] = index[0];
  t.match(file, /^matmul\.reg\.[0-9a-f]{12}\.wgsl$/);
  t.match(key, /tm=16\|tn=4/, 'the tile of flag matmulTile');
  t.same(seen, [key]);
  const code = readFileSync(join(dir, file), 'utf8');
  t.match(code, /fn mm_readA\(/, 'the hooks');
  t.match(code, /struct Params \{\n {2}M: u32, N: u32, K: u32, zOut: u32,/, 'the parameter block');
  t.match(code, /@compute @workgroup_size/, 'an entry point');
});

t.test('VQ_DUMP_WGSL in the environment dumps a process\'s kernels', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vq-dump-env-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script =
    "const m = await import('./engine/node.ts'); await m.init(); const y = m.add(m.tensor([1, 2], [2]), 1); console.log([...(await y.read())].join()); m.destroyGpu();";
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, VQ_DUMP_WGSL: join(dir, 'sub') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(run.status, 0, run.status === 0 ? 'exit 0' : run.stderr);
  t.equal(run.stdout.trim(), '2,3');
  t.ok(existsSync(join(dir, 'sub', 'kernels.tsv')), 'the directory is created');
  const files = readdirSync(join(dir, 'sub')).filter((f) => f.endsWith('.wgsl'));
  t.ok(files.some((f) => /^elementwise\.unary\./.test(f)), files.join(', '));
  for (const f of files) t.match(readFileSync(join(dir, 'sub', f), 'utf8'), /fn main\(/, f);
});
