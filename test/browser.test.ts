// The engine in a real browser: headless Chromium with WebGPU on SwiftShader. First a raw
// WebGPU smoke check (no engine), then the engine bundled for the browser (checked free of
// Node-only code) runs test/browser/suite.ts in the page; each in-page result is an assertion.
// Then a checkpoint trained by the Node trainer is loaded in the page and must reconstruct a
// fixed batch as Node does (test/browser/checkpoint.ts), corrupted checkpoints are refused,
// and test/browser/robust.ts covers a lost device, a browser without WebGPU and URL flags.
// Without a Chromium the browser part skips, except under CI=true, where it must run.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertBrowserClean, bundleForBrowser, findChromium, launchChromium, noChromiumReason, runInPage, serveStatic } from '../scripts/browser.js';
import { destroyGpu, rt } from '../engine/node.js';
import { modelFromCheckpoint, modelPath } from '../model/checkpoint_files.js';
import { resolveTrainConfig } from '../train/config.js';
import { syntheticFaces } from '../train/data/synthetic.js';
import { train } from '../train/trainer.js';
import { encodePngFile, fixtureRgba, tempDir } from './fixtures.js';
import { type ParityReport, reconstruct } from './browser/checkpoint.js';
import type { DeviceLossReport, NoWebGpuReport, UrlFlagsReport } from './browser/robust.js';
import type { SmokeResult } from './browser/smoke.js';
import type { SuiteReport } from './browser/suite.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const PAGE = '<!doctype html><meta charset="utf-8"><title>vqvae-webgpu browser tests</title><link rel="icon" href="data:,"><p>modules are imported by the test runner</p>';
const CLEAN = 'contain no node: import, no webgpu package and no process.env';

/** GET of a raw path (fetch would normalise '..' away), with the status and content type. */
function get(base: string, path: string): Promise<{ status: number; type: string; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((ok, fail) => {
    const req = request({ hostname, port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => ok({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', fail);
    req.end();
  });
}

await t.test('tooling: serveStatic serves what it was given and nothing else; assertBrowserClean names offenders', async (t) => {
  const mem = await serveStatic(new Map<string, string | Uint8Array>([['index.html', PAGE], ['/m.js', 'export {}'], ['w.safetensors', new Uint8Array([1, 2, 3])], ['c.json', '{}']]));
  const dir = await serveStatic(here('./browser'));
  t.teardown(async () => {
    await mem.close();
    await dir.close();
  });
  t.same(await get(mem.url, '/'), { status: 200, type: 'text/html; charset=utf-8', body: PAGE }, "'/' serves index.html");
  t.match(await get(mem.url, '/m.js'), { status: 200, type: 'text/javascript; charset=utf-8' }, 'a module');
  t.match(await get(mem.url, '/w.safetensors'), { status: 200, type: 'application/octet-stream', body: '\x01\x02\x03' }, 'weights as bytes');
  t.match(await get(mem.url, '/c.json'), { status: 200, type: 'application/json' }, 'json');
  t.equal((await get(mem.url, '/missing.js')).status, 404, 'a path it was not given: 404');
  t.equal((await get(mem.url, '/favicon.ico')).status, 204, 'no icon: 204, not a 404 in the console');
  t.match(await get(dir.url, '/smoke.ts'), { status: 200, type: 'application/octet-stream' }, 'a directory: its files');
  for (const path of ['/../browser.test.ts', '/%2e%2e/browser.test.ts', '/..%2fbrowser.test.ts', '/x/../../helpers.ts']) {
    t.equal((await get(dir.url, path)).status, 403, `a path out of the directory is refused: ${path}`);
  }
  // a symlink inside the directory that points out of it
  const tmp = mkdtempSync(join(tmpdir(), 'serve-'));
  mkdirSync(join(tmp, 'root'));
  writeFileSync(join(tmp, 'secret.txt'), 'secret');
  writeFileSync(join(tmp, 'root', 'a.wasm'), 'wasm');
  symlinkSync(join(tmp, 'secret.txt'), join(tmp, 'root', 'link.txt'));
  const linked = await serveStatic(join(tmp, 'root'));
  t.match(await get(linked.url, '/a.wasm'), { status: 200, type: 'application/wasm' }, 'wasm');
  t.equal((await get(linked.url, '/link.txt')).status, 403, 'a symlink out of the directory is refused');
  await linked.close();
  rmSync(tmp, { recursive: true });
  t.doesNotThrow(() => assertBrowserClean('// engine/a.ts\nconst x = 1;\nexport { x };'), 'clean code passes');
  t.throws(() => assertBrowserClean('// engine/a.ts\nimport { readFileSync } from "node:fs";'), /Node built-in import "node:fs" \(in engine\/a\.ts\)/, 'a node: import, with the module it is in');
  t.throws(() => assertBrowserClean('// engine/b.ts\nimport os from "os";'), /Node built-in import "os" \(in engine\/b\.ts\)/, 'a bare built-in import');
  t.throws(() => assertBrowserClean('const { create } = require("webgpu");'), /import of the webgpu package/, 'require("webgpu")');
  t.throws(() => assertBrowserClean('// node_modules/pngjs/lib/png.js\nvar util = __require("util");'), /Node built-in import "util" \(in node_modules\/pngjs\/lib\/png\.js\)/, "esbuild's __require of a built-in");
  t.throws(() => assertBrowserClean('// node_modules/webgpu/index.js\nvar x;'), /webgpu package .*node_modules\/webgpu\/index\.js is bundled/, 'the webgpu package bundled in');
  t.throws(() => assertBrowserClean('// engine/c.ts\nconst v = process.env.VQ_X;'), /process\.env \(in engine\/c\.ts\)/, 'process.env');
});

const chromiumPath = findChromium();
if (!chromiumPath && process.env.CI === 'true') {
  t.fail(`CI must run the browser tests: ${noChromiumReason()}`);
} else {
  // Everything that needs the browser lives in this subtest, so its teardown (browser, server)
  // runs after the last page is done.
  t.test('WebGPU and the engine in Chromium', { skip: chromiumPath ? false : noChromiumReason() }, (t) => inChromium(t, chromiumPath!));
}

/** The page modules, bundled for the browser and served as `<name>.js`. */
const BUNDLES = ['suite', 'checkpoint', 'robust'] as const;

/** The fixed batch both sides reconstruct: synthetic faces the model was not trained on. */
const PARITY_SHAPE = [4, 3, 64, 64];
const PARITY_TOLERANCE = 1e-4;

interface NodeReference {
  adapter: string;
  step: number;
  modelBytes: Uint8Array;
  input: Float32Array;
  output: Float32Array;
  codes: Uint32Array;
}

/**
 * Trains a tiny VQ-VAE for a few steps with the Node trainer (Dawn) on a folder of synthetic
 * faces, loads the checkpoint it saved and reconstructs the fixed batch. The Node GPU is
 * released before the browser starts.
 */
async function nodeReference(t: Test): Promise<NodeReference> {
  const root = tempDir(t, 'vqvae-browser-');
  const images = join(root, 'images');
  mkdirSync(images);
  for (let i = 0; i < 24; i++) writeFileSync(join(images, `face${String(i).padStart(2, '0')}.png`), encodePngFile(fixtureRgba(i, 64, 64), 64, 64));
  const given = { name: 'parity', runsDir: join(root, 'runs'), data: images, cacheDir: join(root, 'cache'), preset: 'seed' as const };
  const size = { hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8, batchSize: 4, steps: 8, lr: 3e-3 };
  const sideWork = { logEvery: 4, valEvery: 100, valImages: 4, checkpointEvery: 100, gridEvery: 100, evalImages: 4 };
  const cfg = resolveTrainConfig({ ...given, ...size, ...sideWork }, { isCpu: true }).config;
  try {
    const res = await train(cfg, { progress: 'none', print: () => {} });
    if (res.status !== 'finished' || !res.checkpoint) throw new Error(`the Node trainer did not finish: ${res.message}`);
    const { model, info } = await modelFromCheckpoint(res.checkpoint);
    const input = syntheticFaces(PARITY_SHAPE[0], 7, 1000);
    const { xHat, codes } = await reconstruct(model, input, PARITY_SHAPE);
    model.dispose();
    return { adapter: rt().caps.description, step: info.step, modelBytes: readFileSync(modelPath(res.checkpoint)), input, output: xHat, codes };
  } finally {
    destroyGpu();
  }
}

async function inChromium(t: Test, executablePath: string): Promise<void> {
  const log = (line: string) => t.comment(line);

  let reference: NodeReference | null = null;
  await t.test('Node: train a tiny VQ-VAE, load its checkpoint, reconstruct a fixed batch', async (t) => {
    reference = await nodeReference(t);
    t.equal(reference.output.length, PARITY_SHAPE.reduce((a, b) => a * b), `reconstructed [${PARITY_SHAPE}] on ${reference.adapter} from the step ${reference.step} checkpoint`);
  });
  const ref = reference as NodeReference | null;

  const smoke = await bundleForBrowser(here('./browser/smoke.ts'));
  const bundles = new Map<string, string>();
  const bundleErrors: string[] = [];
  for (const name of BUNDLES) {
    try {
      const { js } = await bundleForBrowser(here(`./browser/${name}.ts`));
      assertBrowserClean(js);
      bundles.set(name, js);
    } catch (e) {
      bundleErrors.push(`${name}: ${(e as Error).message}`);
    }
  }
  const files = new Map<string, string | Uint8Array>([
    ['index.html', PAGE],
    ['smoke.js', smoke.js],
  ]);
  for (const [name, js] of bundles) files.set(`${name}.js`, js);
  if (ref) {
    files.set('parity.safetensors', ref.modelBytes);
    files.set('parity-input.bin', new Uint8Array(ref.input.buffer, ref.input.byteOffset, ref.input.byteLength));
  }

  const server = await serveStatic(files);
  t.teardown(() => server.close());
  const browser = await launchChromium({ executablePath });
  t.teardown(() => browser.close());

  const smokeResult = await runInPage<SmokeResult>(browser, { url: server.url, module: './smoke.js', fn: 'smoke', timeoutMs: 60_000, log, prefix: '[smoke]' });
  t.ok(smokeResult.ok, `raw WebGPU in Chromium: a compute shader doubles an array: ${smokeResult.detail}`);

  const clean = bundleErrors.length === 0;
  t.ok(clean, `the browser bundles (${BUNDLES.join(', ')}) ${CLEAN}${clean ? '' : `: ${bundleErrors.join('\n')}`}`);

  const skip = !smokeResult.ok ? 'WebGPU does not work in this browser (see the smoke check)' : !clean ? 'the engine does not bundle cleanly for the browser (see above)' : false;
  await t.test('engine kernels in the browser against float64 references', { skip }, async (t) => {
    const t0 = Date.now();
    const report = await runInPage<SuiteReport>(browser, { url: server.url, module: './suite.js', fn: 'run', timeoutMs: 150_000, log, prefix: '[suite]' });
    const c = report.caps;
    t.comment(`adapter: ${report.adapter}; subgroups ${c.subgroups ? `${c.subgroupMinSize}-${c.subgroupMaxSize}` : 'no'}, shader-f16 ${c.shaderF16}, timestamps ${c.timestampQuery}, storage binding ${c.maxStorageBufferBindingSize} bytes`);
    t.comment(`sections (ms): ${report.sections.map((s) => `${s.name} ${s.ms}`).join(', ')}; total ${Date.now() - t0} ms`);
    t.ok(report.results.length > 0, `the suite reported ${report.results.length} results`);
    for (const r of report.results) t.ok(r.ok, r.detail ? `${r.name}: ${r.detail}` : r.name);
  });

  await t.test('a checkpoint trained in Node, loaded and run in the browser', { skip: skip || (ref ? false : 'no Node checkpoint (see the Node subtest)') }, async (t) => {
    const shape = JSON.stringify(PARITY_SHAPE);
    const report = await runInPage<ParityReport>(browser, { url: server.url, module: './checkpoint.js', fn: 'parity', args: ['parity.safetensors', 'parity-input.bin', PARITY_SHAPE], timeoutMs: 60_000, log, prefix: '[checkpoint]' });
    t.equal(report.step, ref!.step, 'the page loaded the checkpoint of the Node run');
    t.equal(report.output.length, ref!.output.length, `the page reconstructed ${shape}`);
    let maxDiff = 0;
    for (let i = 0; i < ref!.output.length; i++) maxDiff = Math.max(maxDiff, Math.abs(report.output[i] - ref!.output[i]));
    t.ok(maxDiff <= PARITY_TOLERANCE, `the page's reconstruction matches Node's within ${PARITY_TOLERANCE}: max |diff| ${maxDiff.toExponential(1)} (Node: ${ref!.adapter}; page: ${report.adapter})`);
    const differ = ref!.codes.filter((c, i) => c !== report.codes[i]).length;
    t.equal(differ, 0, `the same code at each of the ${ref!.codes.length} latent positions`);

    // Each corruption is refused by the loader with its own CheckpointError, naming the source.
    const expected: Record<string, RegExp> = {
      'truncated.safetensors': /^truncated\.safetensors: '[^']+': data_offsets \[\d+, \d+\] reach past the data section \(\d+ bytes; file truncated\?\)$/,
      'bad-header-json.safetensors': /^bad-header-json\.safetensors: header is not valid UTF-8 JSON \(.+\)$/,
      'huge-header-length.safetensors': /^huge-header-length\.safetensors: header length 1099511627776 exceeds the \d+-byte limit$/,
      'nan-weight.safetensors': /^nan-weight\.safetensors: '[^']+' holds a non-finite value \(NaN\) at element \d+$/,
    };
    t.same(report.refusals.map((r) => r.name), Object.keys(expected), 'every corruption was tried');
    for (const r of [...report.refusals, { ...report.intoModel, name: `${report.intoModel.name} loaded into the live model` }]) {
      const re = expected[r.name.split(' ')[0]];
      t.equal(r.error?.name, 'CheckpointError', `${r.name}: refused with a CheckpointError`);
      t.match(r.error?.message ?? 'accepted', re, `${r.name}: ${r.error?.message}`);
      t.equal(r.liveBytesAfter, r.liveBytesBefore, `${r.name}: live GPU bytes unchanged (${r.liveBytesBefore})`);
    }
    t.ok(report.modelUnchanged, 'after the refused load every tensor of the live model is bitwise what it was');
  });

  await t.test('robustness: device loss and a new device; flags from the page URL', { skip }, async (t) => {
    const loss = await runInPage<DeviceLossReport>(browser, { url: server.url, module: './robust.js', fn: 'deviceLoss', timeoutMs: 60_000, log, prefix: '[robust]' });
    // A destroy the engine did not ask for is a loss: reported once through onDeviceLost.
    t.equal(loss.lost.length, 1, `onDeviceLost fires once when the device is destroyed directly: ${loss.lost.join('; ')}`);
    t.match(loss.lost[0] ?? '', /^destroyed: /, 'and says the device was destroyed');
    t.notOk(loss.runtimeAfterLoss, 'currentRuntime() is null after the loss');
    const lostError = /^The GPU device was lost \(destroyed: .*\)\. Call init\(\) again for a new device, then re-create tensors and models/;
    t.match(loss.opError, { name: 'GpuError', message: lostError }, `an op on the lost device throws a GpuError: ${loss.opError?.message}`);
    t.match(loss.readError, { name: 'GpuError', message: lostError }, 'reading a tensor made before the loss rejects with it too');
    t.ok(loss.newRuntime && loss.newDevice, 'init() after the loss gives a new runtime on a new device');
    t.ok(loss.matmul.ok, `a matmul on the new device matches float64: ${loss.matmul.worst}`);
    t.same(loss.lostOnDestroyGpu, [], 'destroyGpu() is deliberate: onDeviceLost is not called');

    const good = await runInPage<UrlFlagsReport>(browser, { url: `${server.url}?VQ_CONV_SCHEDULE=smem`, module: './robust.js', fn: 'urlFlags', timeoutMs: 30_000, log, prefix: '[flags]' });
    t.match(good, { search: '?VQ_CONV_SCHEDULE=smem', error: null, convSchedule: 'smem', engineConvSchedule: 'smem' }, `?VQ_CONV_SCHEDULE=smem sets flags().convSchedule and the conv kernels use smem (auto would pick ${good.autoConvSchedule} here)`);
    const bad = await runInPage<UrlFlagsReport>(browser, { url: `${server.url}?VQ_CONV_SCHEDULE=fast`, module: './robust.js', fn: 'urlFlags', timeoutMs: 30_000, log, prefix: '[flags]' });
    t.equal(bad.error, "VQ_CONV_SCHEDULE must be one of auto, reg, smem, got 'fast'", `?VQ_CONV_SCHEDULE=fast is refused in one line naming the variable: ${bad.error}`);
    t.equal(bad.convSchedule, 'auto', 'and leaves the flag at its default');
  });

  // A second Chromium with its default settings: what a visitor without the switches gets.
  await t.test('a Chromium without the WebGPU switches: init() rejects with a NoGpuError', { skip: clean ? false : 'the engine does not bundle cleanly for the browser (see above)' }, async (t) => {
    const plain = await launchChromium({ executablePath, webgpu: false });
    t.teardown(() => plain.close());
    const r = await runInPage<NoWebGpuReport>(plain, { url: server.url, module: './robust.js', fn: 'noWebGpu', timeoutMs: 30_000, log, prefix: '[no-webgpu]' });
    t.comment(`Chromium ${plain.version()} without the switches: navigator.gpu ${r.navigatorGpu ? 'present' : 'missing'}, requestAdapter() ${r.navigatorGpu ? (r.adapter ?? 'null') : 'n/a'}`);
    if (!r.navigatorGpu) {
      t.match(r.initError, { name: 'NoGpuError', message: /navigator\.gpu is undefined/ }, `no navigator.gpu: ${r.initError?.message}`);
    } else if (r.adapter === null) {
      t.match(r.initError, { name: 'NoGpuError', message: /^No WebGPU adapter was found: WebGPU is present but offered no adapter/ }, `navigator.gpu without an adapter: ${r.initError?.message}`);
    } else {
      t.equal(r.initError, null, `this Chromium offers WebGPU without the switches (${r.adapter}): init() succeeds`);
    }
    t.notOk(r.navigatorGpuAfterDelete, 'navigator.gpu deleted: a page without the WebGPU API');
    t.match(
      r.initErrorWithoutApi,
      { name: 'NoGpuError', message: /^This environment has no WebGPU \(navigator\.gpu is undefined\)\. WebGPU is in Chrome and Edge 113\+ \(on Linux start them with --enable-unsafe-webgpu --enable-features=Vulkan\), Safari 26\+ and Firefox 141\+/ },
      `without the API, the error says which browsers and switches have WebGPU: ${r.initErrorWithoutApi?.message}`,
    );
  });
}
