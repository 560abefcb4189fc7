// The VQ-VAE studio (studio/): its local server refuses everything but the page and the run
// folder's files, and in headless Chromium (WebGPU on SwiftShader) the page loads a run the Node
// trainer made, reconstructs dropped images with the PSNR `npm run eval` gets, edits codes,
// samples reproducibly, trains in the tab, hands out a checkpoint Node loads, and shows every
// error a person can act on. Screenshots of each panel go to $STUDIO_SHOTS (default
// /tmp/studio-shots). Without a Chromium the browser part skips, except under CI=true.
import t, { type Test } from 'tap';
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { destroyGpu, init } from '../engine/node.js';
import { modelFromCheckpointBytes } from '../model/checkpoint.js';
import { buildStudio, listRun, startStudioServer } from '../studio/server.js';
import { findChromium, launchChromium, noChromiumReason } from '../scripts/browser.js';
import { resolveTrainConfig } from '../train/config.js';
import { openDataset } from '../train/data/index.js';
import { evaluateRun } from '../train/evalrun.js';
import { PRIOR_CPU_PRESET, trainPrior } from '../train/prior.js';
import { dataConfig, train } from '../train/trainer.js';
import { encodePngFile, fixtureRgba, tempDir } from './fixtures.js';

const SHOTS = process.env.STUDIO_SHOTS ?? '/tmp/studio-shots';

function get(base: string, path: string, opts: { method?: string; host?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((ok, fail) => {
    const req = request({ hostname, port, path, method: opts.method ?? 'GET', headers: opts.host ? { host: opts.host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => ok({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** Every file under `dir` with its size and mtime: a snapshot to prove nothing was written. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${p} -> link`);
      else if (st.isDirectory()) walk(p);
      else out.push(`${p} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return out.join('\n');
}

const root = tempDir(t, 'vqvae-studio-');
const dist = join(root, 'dist');
await buildStudio(dist, { quiet: true });

await t.test('server: the page and the run folder, nothing else', async (t) => {
  const run = join(root, 'srv', 'run');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  writeFileSync(join(root, 'srv', 'secret.txt'), 'secret');
  writeFileSync(join(run, 'config.json'), '{"name":"x"}');
  writeFileSync(join(run, 'checkpoints', 'step-000001.safetensors'), 'w');
  symlinkSync(join(root, 'srv', 'secret.txt'), join(run, 'link.txt'));
  symlinkSync(join(root, 'srv'), join(run, 'up'));
  const before = snapshot(run);
  const s = await startStudioServer({ dist, runDir: run });
  t.teardown(() => s.close());
  t.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/$/, `listens on 127.0.0.1: ${s.url}`);
  const page = await get(s.url, '/');
  t.equal(page.status, 200, "'/' serves the page");
  t.match(page.headers['content-type'], /text\/html/);
  const index = await get(s.url, '/api/run');
  t.same(JSON.parse(index.body), { name: 'run', files: [{ path: 'checkpoints/step-000001.safetensors', size: 1 }, { path: 'config.json', size: 12 }] }, 'the run listing has its files and no symlink out of it');
  t.equal((await get(s.url, '/run/config.json')).body, '{"name":"x"}', 'a run file');
  const refused = [
    '/run/../secret.txt',
    '/run/%2e%2e/secret.txt',
    '/run/%2E%2E%2Fsecret.txt',
    '/run/..%2fsecret.txt',
    '/run/%252e%252e/secret.txt',
    '/run/..%5csecret.txt',
    '/run/link.txt',
    '/run/up/secret.txt',
    '/run/%00config.json',
    '/../../etc/passwd',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/run//etc/passwd',
  ];
  for (const p of refused) {
    const r = await get(s.url, p);
    t.ok(r.status === 403 || r.status === 404, `refused: ${p} -> ${r.status}`);
    t.notMatch(r.body, /secret|root:/, `and nothing of the file: ${p}`);
  }
  t.equal((await get(s.url, '/run/link.txt')).status, 403, 'a symlink out of the folder: 403');
  t.equal((await get(s.url, '/', { host: 'evil.example:80' })).status, 403, 'another Host (DNS rebinding): 403');
  t.equal((await get(s.url, '/run/config.json', { method: 'POST' })).status, 405, 'POST: 405');
  t.equal((await get(s.url, '/run/config.json', { method: 'PUT' })).status, 405, 'PUT: 405');
  for (const p of ['/', '/run/config.json', '/api/run', '/nope']) {
    const h = (await get(s.url, p)).headers;
    t.notOk(Object.keys(h).some((k) => k.startsWith('access-control-')), `no CORS header on ${p}`);
    t.equal(h['x-content-type-options'], 'nosniff', `nosniff on ${p}`);
  }
  const bare = await startStudioServer({ dist });
  t.equal((await get(bare.url, '/api/run')).status, 404, 'without a run folder: /api/run is 404');
  t.equal((await get(bare.url, '/run/config.json')).status, 404, 'and /run/ serves nothing');
  await bare.close();
  t.equal(snapshot(run), before, 'the run folder is unchanged');
  t.same(listRun(run).map((f) => f.path), ['checkpoints/step-000001.safetensors', 'config.json'], 'listRun');
});

const chromiumPath = findChromium();
if (!chromiumPath && process.env.CI === 'true') t.fail(`CI must run the browser tests: ${noChromiumReason()}`);
else await t.test('the studio in Chromium', { skip: chromiumPath ? false : noChromiumReason() }, (t) => inChromium(t, chromiumPath!));

interface NodeRun {
  runDir: string;
  images: string;
  /** Source files of the run's test split, and `npm run eval`'s PSNR on them. */
  testFiles: string[];
  evalPsnr: number;
}

/** A tiny run made by the Node trainer on a folder of 80x72 PNGs, with a prior. */
async function nodeRun(t: Test): Promise<NodeRun> {
  const images = join(root, 'images');
  mkdirSync(images);
  for (let i = 0; i < 80; i++) writeFileSync(join(images, `face${String(i).padStart(2, '0')}.png`), encodePngFile(fixtureRgba(i, 80, 72), 80, 72));
  const given = { name: 'tiny', runsDir: join(root, 'runs'), data: images, cacheDir: join(root, 'cache'), preset: 'seed' as const };
  const size = { hidden: 16, residualHidden: 8, residualBlocks: 1, codebookSize: 16, embeddingDim: 8, batchSize: 4, steps: 20, lr: 3e-3 };
  const side = { logEvery: 2, valEvery: 10, valImages: 4, checkpointEvery: 10, gridEvery: 100, evalImages: 4 };
  const cfg = resolveTrainConfig({ ...given, ...size, ...side }, { isCpu: true }).config;
  try {
    const res = await train(cfg, { progress: 'none', print: () => {} });
    if (res.status !== 'finished') throw new Error(`the Node trainer did not finish: ${res.message}`);
    await trainPrior({ ...PRIOR_CPU_PRESET, run: res.runDir, width: 8, layers: 1, headWidth: 8, steps: 10, batchSize: 4, trainImages: 16, validImages: 4, logEvery: 5, valEvery: 10, checkpointEvery: 10 }, { progress: 'none', print: () => {} });
    const ds = await openDataset(dataConfig(cfg, undefined, 'none'));
    const testFiles = Array.from(ds.splits.test, (i) => join(images, ds.files![i]));
    const e = await evaluateRun(res.runDir, { split: 'test', print: () => {} });
    t.equal(e.result.images, testFiles.length, `npm run eval: ${e.result.images} test images, PSNR ${e.result.psnr.toFixed(3)} dB`);
    return { runDir: res.runDir, images, testFiles, evalPsnr: e.result.psnr };
  } finally {
    destroyGpu();
  }
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function tab(page: Page, name: string): Promise<void> {
  return page.click(`#tab-${name}`);
}

/** Drops files on an element with a real DataTransfer (the files' bytes go through the page). */
async function dropFiles(page: Page, selector: string, files: string[]): Promise<void> {
  const payload = files.map((f) => ({ name: f.split('/').pop()!, b64: readFileSync(f).toString('base64') }));
  // globalThis, not window: the test is typechecked without the DOM library
  const dt = await page.evaluateHandle((list) => {
    const g = globalThis as any;
    const d = new g.DataTransfer();
    for (const f of list) {
      const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
      d.items.add(new g.File([bytes], f.name, { type: 'image/png' }));
    }
    return d;
  }, payload);
  await page.dispatchEvent(selector, 'drop', { dataTransfer: dt });
}

async function inChromium(t: Test, executablePath: string): Promise<void> {
  let run: NodeRun | null = null;
  await t.test('Node: a tiny run with a prior, and npm run eval on its test split', async (t) => {
    run = await nodeRun(t);
  });
  if (!run) return;
  const r = run as NodeRun;
  const before = snapshot(r.runDir);
  const server = await startStudioServer({ dist, runDir: r.runDir });
  t.teardown(() => server.close());
  const browser: Browser = await launchChromium({ executablePath });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  const latencies: string[] = [];

  await t.test('Run: the Node run opens with its curves, config, checkpoint and prior', async (t) => {
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="yes"]', { timeout: 60_000 });
    const status = await page.textContent('#status');
    t.match(status, /model tiny\/checkpoints\/step-000020\.safetensors \(step 20, K 16/, `status: ${status}`);
    t.match(status, /prior tiny\/prior\/checkpoints\/step-000010\.safetensors/, 'the prior is loaded');
    const points = Number(await page.getAttribute('#chart-loss', 'data-points'));
    const rows = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').length;
    t.equal(points, rows, `the loss chart has every metrics.jsonl row (${rows})`);
    t.ok(await page.isVisible('#chart-loss canvas'), 'the chart is drawn');
    t.match(await page.textContent('#run-config'), /codebookSize16/, 'the config table');
    await shot(page, 'run');
    await tab(page, 'device');
    t.match(await page.textContent('#d-adapter'), /adapter/, 'Device: the adapter');
    t.ok((await page.$$('#d-features li')).length > 0, 'Device: features listed');
    t.match(await page.textContent('#d-limits'), /maxStorageBufferBindingSize/, 'Device: limits');
  });

  await t.test('Reconstruct: dropped images, PSNR as npm run eval, and a code edit', async (t) => {
    await tab(page, 'recon');
    await dropFiles(page, '#panel-recon', r.testFiles);
    await page.waitForFunction((n) => (globalThis as any).__studio.recon?.names.length === n, r.testFiles.length, { timeout: 60_000 });
    const rec = await page.evaluate(() => (globalThis as any).__studio.recon as { meanPsnr: number; psnr: number[] });
    const shown = Number(/PSNR ([\d.]+) dB/.exec((await page.textContent('#recon-summary'))!)![1]);
    t.ok(Math.abs(shown - r.evalPsnr) <= 0.01, `the page shows ${shown} dB, npm run eval ${r.evalPsnr.toFixed(3)} dB on the same ${r.testFiles.length} images`);
    t.ok(Math.abs(rec.meanPsnr - r.evalPsnr) < 0.005, `unrounded: ${rec.meanPsnr.toFixed(4)} vs ${r.evalPsnr.toFixed(4)}`);
    t.equal((await page.$$('#recon-grid figure')).length, r.testFiles.length, 'one figure per image');
    t.equal((await page.$$('#recon-grid figure .psnr')).length, r.testFiles.length, 'each with its PSNR');

    // 64 images of the folder (80x72), plus a file that is not an image: skipped and listed
    const broken = join(root, 'not-an-image.png');
    writeFileSync(broken, 'this is not a PNG');
    const files = readdirSync(r.images).slice(0, 64).map((f) => join(r.images, f));
    const t0 = Date.now();
    await page.setInputFiles('#recon-files', [...files, broken]);
    await page.waitForFunction(() => (globalThis as any).__studio.recon?.names.length === 64, null, { timeout: 120_000 });
    latencies.push(`reconstruct 64 images (decode, preprocess, forward, draw): ${Date.now() - t0} ms`);
    t.match(await page.textContent('#recon-skipped'), /skipped not-an-image\.png: /, `the broken file is listed: ${await page.textContent('#recon-skipped')}`);

    // hover a cell: its code and patch; click it, put another code, see the decode change
    await page.hover('#codemap button:nth-child(18)');
    const info = await page.textContent('#cell-info');
    t.match(info, /^Cell \(1, 1\): code \d+/, `hover shows the cell's code: ${info}`);
    const beforeEdit = await page.evaluate(() => (globalThis as any).document.getElementById('edit-canvas').toDataURL() as string);
    const code = Number(/code (\d+)/.exec(info!)![1]);
    await page.click('#codemap button:nth-child(18)');
    await page.fill('#edit-code', String((code + 5) % 16));
    await page.click('#edit-apply');
    await page.waitForSelector('#edit-canvas[data-edits="1"]');
    const afterEdit = await page.evaluate(() => (globalThis as any).document.getElementById('edit-canvas').toDataURL() as string);
    t.not(afterEdit, beforeEdit, `putting code ${(code + 5) % 16} at (1, 1) changes the decode`);
    t.match(await page.getAttribute('#codemap button:nth-child(18)', 'aria-label'), new RegExp(`code ${(code + 5) % 16}$`), 'the cell reads its new code');
    await page.fill('#edit-code', '99');
    await page.click('#edit-apply');
    t.match(await page.textContent('#recon-error'), /A code is an integer from 0 to 15, got 99/, 'a code out of range is refused in words');
    t.equal(await page.inputValue('#edit-code'), '99', 'and what was typed stays');
    await shot(page, 'reconstruct');
  });

  await t.test('Codebook: usage, perplexity, dead codes and the atlas', async (t) => {
    await tab(page, 'codebook');
    await page.click('#cb-atlas');
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#atlas figure').length === 16, null, { timeout: 60_000 });
    const summary = await page.textContent('#cb-summary');
    t.match(summary, /perplexity [\d.]+ of 16 codes; \d+ used, \d+ dead/, summary ?? '');
    const dead = Number(/(\d+) dead/.exec(summary!)![1]);
    t.equal((await page.$$('#atlas figure.dead')).length, dead, `the ${dead} dead codes are outlined in the atlas`);
    await shot(page, 'codebook');
  });

  await t.test('Train: 30 steps in the tab, the loss falls, the chart grows, the main thread stays free', async (t) => {
    await tab(page, 'train');
    const set = { 't-hidden': '16', 't-rhidden': '8', 't-rblocks': '1', 't-k': '16', 't-d': '8', 't-batch': '4', 't-steps': '30', 't-lr': '0.003', 't-log': '2', 't-seed': '0' };
    for (const [id, v] of Object.entries(set)) await page.fill(`#${id}`, v);
    await page.evaluate(() => ((globalThis as any).__studio.longTasks.length = 0));
    await page.click('#t-start');
    await page.waitForFunction(() => (globalThis as any).__studio.trainRows.length >= 3, null, { timeout: 60_000 });
    const midPoints = Number(await page.getAttribute('#chart-tloss', 'data-points'));
    const midStatus = await page.textContent('#t-status');
    await page.waitForSelector('body[data-train="finished"]', { timeout: 120_000 });
    const rows = await page.evaluate(() => (globalThis as any).__studio.trainRows as { step: number; loss: number; step_ms: number }[]);
    const points = Number(await page.getAttribute('#chart-tloss', 'data-points'));
    t.equal(rows.at(-1)!.step, 30, 'trained 30 steps');
    t.ok(points > midPoints, `the chart grew while training (${midPoints} -> ${points} points)`);
    t.ok(rows.at(-1)!.loss < rows[0].loss, `the loss fell: ${rows[0].loss.toFixed(4)} -> ${rows.at(-1)!.loss.toFixed(4)}`);
    const ms = rows.slice(2).map((r) => r.step_ms).sort((a, b) => a - b);
    latencies.push(`one training step (batch 4, warm, median): ${ms[ms.length >> 1].toFixed(0)} ms`);
    // Training on the main thread would make every step a long task; one stray task stretched by
    // a starved CPU (tap runs two test files at once on two cores) is the machine, not the page.
    const long = await page.evaluate(() => ((globalThis as any).__studio.longTasks as number[]).slice());
    const over = long.filter((ms) => ms > 100);
    t.ok(over.length <= 1, `main-thread tasks over 100 ms while training 30 steps: ${over.length} (at most 1; long tasks seen: ${long.map((ms) => ms.toFixed(0)).join(', ') || 'none'} ms)`);
    t.match(midStatus, /Step \d+\/30 .* [\d.]+ img\/s .* ETA \d/, `while training: ${midStatus}`);
    await page.waitForFunction(() => (globalThis as any).__studio.timing !== null, null, { timeout: 30_000 });
    await shot(page, 'train');
    await tab(page, 'device');
    t.match(await page.textContent('#d-timing'), /forward \+ backward/, 'the Device panel shows the timed step');
    const kernelRows = await page.$$eval('#d-kernels tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
    t.ok(kernelRows.length >= 5 && kernelRows.some((r) => /^conv/.test(r)) && kernelRows.some((r) => /^optim|adam/i.test(r)), `and its GPU time per kernel: ${kernelRows.slice(0, 4).join('; ')} ... (${kernelRows.length} kernels)`);
    await shot(page, 'device');

    await tab(page, 'train');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#t-download')]);
    const bytes = readFileSync((await dl.path())!);
    const file = join(root, dl.suggestedFilename());
    writeFileSync(file, bytes);
    await init();
    const { model, info } = await modelFromCheckpointBytes(bytes, file);
    t.equal(info.step, 30, `${dl.suggestedFilename()} loads strictly in Node at step 30`);
    t.equal(model.config.codebookSize, 16, 'with the trained config');
    model.dispose();
    const e = await evaluateRun(r.runDir, { split: 'test', checkpoint: file, out: join(root, 'eval-studio.json'), print: () => {} });
    t.ok(Number.isFinite(e.result.psnr), `npm run eval loads it too: PSNR ${e.result.psnr.toFixed(2)} dB`);
    destroyGpu();
  });

  await t.test('errors a person can act on', async (t) => {
    await tab(page, 'train');
    await page.fill('#t-steps', '31');
    await tab(page, 'run');
    const notCkpt = join(root, 'notes.safetensors');
    writeFileSync(notCkpt, 'hello, not a checkpoint');
    await page.setInputFiles('#file-checkpoint', notCkpt);
    await page.waitForSelector('#run-error:not([hidden])');
    t.match(await page.textContent('#run-error'), /^notes\.safetensors: /, `not a checkpoint: ${await page.textContent('#run-error')}`);
    const codes = readdirSync(join(r.runDir, 'prior')).find((f) => f.startsWith('codes-'))!;
    await page.setInputFiles('#file-checkpoint', join(r.runDir, 'prior', codes));
    await page.waitForFunction((c) => ((globalThis as any).document.getElementById('run-error').textContent as string).startsWith(c), codes);
    t.match(await page.textContent('#run-error'), new RegExp(`^${codes}: `), `not this model: ${await page.textContent('#run-error')}`);
    t.equal(await page.inputValue('#t-steps'), '31', 'what was typed survives the errors');

    // out of GPU memory: a batch far over the device's buffer limits
    await tab(page, 'train');
    await page.fill('#t-batch', '100000');
    await page.fill('#t-steps', '1');
    await page.click('#t-start');
    await page.waitForSelector('#t-error:not([hidden])', { timeout: 120_000 });
    const oom = await page.textContent('#t-error');
    t.match(oom, /Out of GPU memory.*Try a smaller batch size/s, `a batch too large: ${oom?.slice(0, 300)}`);
    t.equal(await page.inputValue('#t-batch'), '100000', 'the settings stay as typed');
    await page.fill('#t-batch', '4');

    // device lost: the banner offers to reload the model, which then works again
    await page.evaluate(() => (globalThis as any).__studio.loseDevice());
    await page.waitForSelector('#banner:not([hidden]) #banner-action', { timeout: 30_000 });
    t.match(await page.textContent('#banner'), /The GPU device was lost/, 'device lost: said in the page');
    await shot(page, 'device-lost');
    await page.click('#banner-action');
    await page.waitForFunction(() => (globalThis as any).__studio.device && (globalThis as any).__studio.model && (globalThis as any).document.getElementById('banner').hidden, null, { timeout: 60_000 });
    await tab(page, 'recon');
    await page.click('#recon-synthetic');
    await page.waitForFunction(() => (globalThis as any).__studio.recon?.names.length === 16, null, { timeout: 60_000 });
    t.pass('after the reload the model reconstructs again');

    // no WebGPU: a Chromium without the switches
    const plain = await launchChromium({ executablePath, webgpu: false });
    t.teardown(() => plain.close());
    const p2 = await plain.newPage();
    await p2.goto(server.url);
    await p2.waitForSelector('body[data-ready="no-gpu"]', { timeout: 60_000 }).catch(() => {});
    const ready = await p2.getAttribute('body', 'data-ready');
    if (ready === 'no-gpu') {
      t.match(await p2.textContent('#banner'), /WebGPU/, `no WebGPU: ${await p2.textContent('#banner')}`);
      await shot(p2, 'no-webgpu');
    } else {
      t.comment('this Chromium offers WebGPU without the switches');
    }
  });

  // After the device loss above: the prior and model reloaded on the new device sample too.
  await t.test('Sample: row by row, the same PNG for the same seed', async (t) => {
    await tab(page, 'sample');
    const pngs: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      await page.fill('#s-count', '4');
      await page.fill('#s-seed', '7');
      await page.fill('#s-temp', '1');
      const t0 = Date.now();
      await page.click('#s-go');
      await page.waitForFunction(() => /^4 samples/.test((globalThis as any).document.getElementById('s-progress').textContent), null, { timeout: 400_000 });
      if (i === 0) latencies.push(`sample 4 images (prior row by row, 256 positions, + decode): ${Date.now() - t0} ms`);
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#s-download')]);
      pngs.push(readFileSync((await dl.path())!));
    }
    t.ok(pngs[0].subarray(1, 4).toString() === 'PNG', 'the download is a PNG');
    t.ok(pngs[0].equals(pngs[1]), `seed 7 twice: the same PNG (${pngs[0].length} bytes)`);
    await shot(page, 'sample');
  });

  t.same(errors, [], 'no page errors or console errors');
  t.equal(snapshot(r.runDir).split('\n').filter((l) => !l.includes('eval-')).join('\n'), before.split('\n').filter((l) => !l.includes('eval-')).join('\n'), 'the server never wrote to the run folder');
  t.comment(`latencies on ${browser.version()} (SwiftShader): ${latencies.join('; ')}`);
}
