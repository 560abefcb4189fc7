// The engine as a library: pack the package, install the tarball in an empty folder and use
// it from plain JavaScript, as a user would.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assertBrowserClean, bundleForBrowser } from '../scripts/browser.js';

const root = resolve(import.meta.dirname, '..');

t.test('npm pack -> npm install -> import from plain JavaScript', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vq-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const npm = (args: string[], cwd: string) =>
    execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  npm(['pack', '--pack-destination', dir, '--silent'], root);
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  t.ok(tarball, 'npm pack wrote a tarball');
  const app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npm(['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, tarball!)], app);
  writeFileSync(
    join(app, 'main.js'),
    `import { init, tensor, full, tidy, memory, destroyGpu } from 'vqvae-webgpu';
const rt = await init();
const x = tensor([1, 2, 3], [3]);
const y = full([2, 2], 0.5);
const out = { x: [...await x.read()], y: [...await y.read()], cpu: typeof rt.caps.isCpu, live: memory().liveBytes > 0 };
tidy(() => full([4], 1));
console.log(JSON.stringify(out));
destroyGpu();
`,
  );
  const stdout = execFileSync(process.execPath, ['main.js'], {
    cwd: app,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
  const got = JSON.parse(stdout.trim().split('\n').pop()!);
  t.same(got, { x: [1, 2, 3], y: [0.5, 0.5, 0.5, 0.5], cpu: 'boolean', live: true });
  // the typings travel too
  t.ok(readdirSync(join(app, 'node_modules/vqvae-webgpu/dist/engine')).includes('index.d.ts'), 'types shipped');

  // A bundler building for the browser resolves the same import to the platform-free entry.
  writeFileSync(
    join(app, 'page.js'),
    `import { init, tensor } from 'vqvae-webgpu';\nimport { modelFromCheckpointBytes } from 'vqvae-webgpu/model';\nconst rt = await init();\nconsole.log(await tensor([1], [1]).read(), rt.caps, modelFromCheckpointBytes);\n`,
  );
  const { js } = await bundleForBrowser(join(app, 'page.js'));
  t.doesNotThrow(() => assertBrowserClean(js), 'the browser bundle of the installed package has no node: import, no webgpu package and no process.env');
  t.match(js, /navigator/, 'it reaches WebGPU through navigator.gpu');
  t.match(js, /function modelFromCheckpointBytes/, 'the model library (checkpoints from bytes) bundles too');
  t.notMatch(js, /__vqDawnInstance/, 'and not through the Node entry');
});
