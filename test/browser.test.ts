// The engine in a real browser: headless Chromium with WebGPU on SwiftShader. First a raw
// WebGPU smoke check (no engine), then the engine bundled for the browser (checked free of
// Node-only code) runs test/browser/suite.ts in the page; each in-page result is an assertion.
// Without a Chromium the browser part skips, except under CI=true, where it must run.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertBrowserClean, bundleForBrowser, findChromium, launchChromium, noChromiumReason, runInPage, serveStatic } from '../scripts/browser.js';
import type { SmokeResult } from './browser/smoke.js';
import type { SuiteReport } from './browser/suite.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const PAGE = '<!doctype html><meta charset="utf-8"><title>vqvae-webgpu browser tests</title><link rel="icon" href="data:,"><p>modules are imported by the test runner</p>';
const CLEAN = 'the browser bundle contains no node: import, no webgpu package and no process.env';

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

async function inChromium(t: Test, executablePath: string): Promise<void> {
  const log = (line: string) => t.comment(line);
  const smoke = await bundleForBrowser(here('./browser/smoke.ts'));
  let suiteJs: string | null = null;
  let bundleError: string | null = null;
  try {
    suiteJs = (await bundleForBrowser(here('./browser/suite.ts'))).js;
  } catch (e) {
    bundleError = (e as Error).message;
  }
  const files = new Map<string, string>([
    ['index.html', PAGE],
    ['smoke.js', smoke.js],
  ]);
  if (suiteJs) files.set('suite.js', suiteJs);

  const server = await serveStatic(files);
  t.teardown(() => server.close());
  const browser = await launchChromium({ executablePath });
  t.teardown(() => browser.close());

  const smokeResult = await runInPage<SmokeResult>(browser, { url: server.url, module: './smoke.js', fn: 'smoke', timeoutMs: 60_000, log, prefix: '[smoke]' });
  t.ok(smokeResult.ok, `raw WebGPU in Chromium: a compute shader doubles an array: ${smokeResult.detail}`);

  let clean = false;
  if (bundleError) t.fail(`${CLEAN}: ${bundleError}`);
  else {
    try {
      assertBrowserClean(suiteJs!);
      clean = true;
      t.pass(CLEAN);
    } catch (e) {
      t.fail(`${CLEAN}: ${(e as Error).message}`);
    }
  }

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
}
