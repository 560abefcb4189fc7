// Browser tooling for tests, benchmarks and demo pages: find and launch a headless Chromium
// with WebGPU, serve files over http on 127.0.0.1, bundle TypeScript for the browser with
// esbuild, check a bundle has nothing Node-only in it, and run an exported function in a page.
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { createServer } from 'node:http';
import { delimiter, extname, join, relative, resolve, sep, isAbsolute } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

/**
 * Chromium switches for WebGPU in a headless browser with no GPU: SwiftShader (a CPU Vulkan
 * device built into Chromium) as the adapter. WebGPU is still behind a flag on Linux.
 */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * The Chromium to drive: env CHROMIUM_PATH, else Debian's /usr/bin/chromium, else chromium,
 * chromium-browser or google-chrome on PATH. A CHROMIUM_PATH that is not an executable gives
 * null rather than another browser (an explicit choice must not be silently replaced).
 */
export function findChromium(): string | null {
  const env = process.env.CHROMIUM_PATH;
  if (env) return isExecutable(env) ? env : null;
  if (isExecutable('/usr/bin/chromium')) return '/usr/bin/chromium';
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const found = onPath(name);
    if (found) return found;
  }
  return null;
}

/** Why no Chromium can be used, in one line with the fix (for skip messages and errors). */
export function noChromiumReason(): string {
  const env = process.env.CHROMIUM_PATH;
  if (env) return `CHROMIUM_PATH=${env} is not an executable file`;
  return 'no Chromium found (looked for /usr/bin/chromium, chromium, chromium-browser, google-chrome): run `npm run setup:chromium` or set CHROMIUM_PATH';
}

export interface LaunchOptions {
  /** The browser binary (default: findChromium()). */
  executablePath?: string;
  /** Switches added after WEBGPU_ARGS. */
  args?: string[];
  /** Default true; false leaves out WEBGPU_ARGS, as a browser with its default settings (to test pages without WebGPU). */
  webgpu?: boolean;
  /** Default true; false shows a window (needs a display). */
  headless?: boolean;
}

/** A Playwright Browser on the system Chromium with WebGPU on SwiftShader (unless opts.webgpu is false). */
export async function launchChromium(opts: LaunchOptions = {}): Promise<Browser> {
  const executablePath = opts.executablePath ?? findChromium();
  if (!executablePath) throw new Error(noChromiumReason());
  // Chromium refuses to start its sandbox as root; only then do we turn it off.
  const root = process.getuid?.() === 0;
  const args = [...(opts.webgpu === false ? [] : WEBGPU_ARGS), ...(root ? ['--no-sandbox'] : []), ...(opts.args ?? [])];
  return chromium.launch({ executablePath, args, headless: opts.headless ?? true });
}

// ---------------------------------------------------------------------------------------------
// A static http server

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
};

/** The Content-Type served for a file name (application/octet-stream when unknown). */
export function contentType(name: string): string {
  return CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

export interface Served {
  /** The server's root, e.g. 'http://127.0.0.1:40123/' (with the trailing slash). */
  url: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Extra headers on every response (e.g. COOP/COEP for SharedArrayBuffer). */
  headers?: Record<string, string>;
}

/**
 * Serves `files` (URL path -> content; keys with or without a leading '/') or the files under
 * a directory on 127.0.0.1 at a random free port. '/' serves '/index.html'. Anything else is
 * 404, and a path that leaves the directory (.., %2e%2e, a symlink out of it) is 403.
 */
export async function serveStatic(files: Map<string, Uint8Array | string> | string, opts: ServeOptions = {}): Promise<Served> {
  const table = typeof files === 'string' ? null : new Map([...files].map(([k, v]) => [k.startsWith('/') ? k : `/${k}`, v]));
  const root = typeof files === 'string' ? realpathSync(files) : null;

  const lookup = async (urlPath: string): Promise<{ status: number; body?: Uint8Array | string }> => {
    if (table) {
      const body = table.get(urlPath);
      return body === undefined ? { status: 404 } : { status: 200, body };
    }
    const full = resolve(root!, `.${urlPath}`);
    if (!inside(root!, full)) return { status: 403 };
    let real: string;
    try {
      real = realpathSync(full);
    } catch {
      return { status: 404 };
    }
    if (!inside(root!, real)) return { status: 403 };
    if (!statSync(real).isFile()) return { status: 404 };
    return { status: 200, body: await readFile(real) };
  };

  const server = createServer((req, res) => {
    const reply = (status: number, body: Uint8Array | string = '', type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...opts.headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    // The raw path, not a normalised URL: '/a/../../x' is refused, not quietly turned into '/x'.
    let path: string;
    try {
      path = decodeURIComponent((req.url ?? '/').split(/[?#]/)[0]);
    } catch {
      return reply(400, 'bad path\n');
    }
    if (!path.startsWith('/') || path.includes('\0') || path.split(/[\\/]/).includes('..')) return reply(403, 'forbidden\n');
    if (path.endsWith('/')) path += 'index.html';
    lookup(path).then(
      ({ status, body }) => {
        if (status === 200) return reply(200, body!, contentType(path));
        // Browsers ask for an icon by themselves: no content instead of a 404 in every page's console.
        if (status === 404 && path === '/favicon.ico') return reply(204);
        reply(status, status === 403 ? 'forbidden\n' : 'not found\n');
      },
      (e) => reply(500, `${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('serveStatic: the server has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

// ---------------------------------------------------------------------------------------------
// Bundling

export interface BundleOptions {
  /**
   * Packages (and their subpaths) replaced by an empty module: for packages a bundled module
   * imports but the page never calls (e.g. image codecs next to a function it needs). Their
   * imports come out undefined, so a call into one fails loudly.
   */
  stub?: string[];
}

/** An esbuild plugin resolving `names` (and their subpaths) to an empty CommonJS module. */
function stubPlugin(names: string[]): Plugin {
  const escaped = names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
  const filter = new RegExp(`^(?:${escaped.join('|')})(?:/.*)?$`);
  return {
    name: 'stub',
    setup(b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'stub' }));
      b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({ contents: `// ${args.path}: stubbed out of this browser bundle\nmodule.exports = {};\n`, loader: 'js' }));
    },
  };
}

/**
 * Bundles `entry` and its imports into one ES module for the browser (es2022, inline source
 * map). Node built-ins are left as external imports instead of failing the build, so that
 * assertBrowserClean can name them and the module that pulled them in.
 */
export async function bundleForBrowser(entry: string, opts: BundleOptions = {}): Promise<{ js: string }> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'inline',
    write: false,
    logLevel: 'silent',
    external: ['node:*', ...builtinModules],
    plugins: opts.stub?.length ? [stubPlugin(opts.stub)] : [],
  }).catch((e: { errors?: { text: string; location?: { file: string; line: number } | null }[]; message: string }) => {
    const lines = e.errors?.map((m) => (m.location ? `${m.location.file}:${m.location.line}: ${m.text}` : m.text));
    throw new Error(`bundling ${entry} for the browser failed:\n${lines?.join('\n') ?? e.message}`);
  });
  return { js: result.outputFiles[0].text };
}

const BUILTINS = new Set(builtinModules);

/**
 * Throws, naming each offender and the bundled source file it sits in, if the bundle holds a
 * Node built-in import (`node:*` or a bare built-in name), the `webgpu` npm package (Dawn's
 * Node bindings) or a `process.env` read. The inline source map is ignored.
 */
export function assertBrowserClean(js: string): void {
  const code = js.replace(/\/\/# sourceMappingURL=data:[^\n]*/g, '');
  const found: string[] = [];
  const at = (index: number, what: string) => found.push(`${what} (in ${sourceFileAt(code, index)})`);
  // esbuild writes a CommonJS require it cannot resolve as __require("name").
  const importRe = /(?:\bfrom\s*|\bimport\s*\(?\s*|(?:\b|__)require\s*\(\s*)(["'])([^"'\n]+)\1/g;
  for (const m of code.matchAll(importRe)) {
    const spec = m[2];
    if (spec.startsWith('node:') || BUILTINS.has(spec)) at(m.index!, `Node built-in import "${spec}"`);
    else if (spec === 'webgpu' || spec.startsWith('webgpu/')) at(m.index!, `import of the webgpu package ("${spec}")`);
  }
  for (const m of code.matchAll(/^\/\/ (\S*node_modules\/webgpu\/\S+)$/gm)) found.push(`the webgpu package (Dawn's Node bindings): ${m[1]} is bundled`);
  for (const m of code.matchAll(/\bdawn\.node\b/g)) at(m.index!, `Dawn's Node binary ("dawn.node")`);
  for (const m of code.matchAll(/\bprocess\s*(?:\.\s*env\b|\[\s*["']env["']\s*\])/g)) at(m.index!, 'process.env');
  if (found.length) throw new Error(`the browser bundle is not platform-free:\n  ${[...new Set(found)].join('\n  ')}`);
}

/** The source file esbuild's `// path` marker names for the code at `index` of a bundle. */
function sourceFileAt(code: string, index: number): string {
  const before = code.slice(0, index);
  const markers = [...before.matchAll(/^\/\/ ((?:[\w.@-]+\/)*[\w.@-]+\.[cm]?[jt]sx?)$/gm)];
  return markers.length ? markers[markers.length - 1][1] : 'an unknown module';
}

// ---------------------------------------------------------------------------------------------
// Running code in a page

export interface RunInPageOptions {
  /** The page to open (served over http: WebGPU needs a secure context, which 127.0.0.1 is). */
  url: string;
  /** The module to import in the page, relative to `url` (e.g. './suite.js'). */
  module: string;
  /** The exported async function to call. */
  fn: string;
  /** JSON-serialisable arguments. */
  args?: unknown[];
  /** Time limit for loading the page, importing the module and running fn (default 120 s). */
  timeoutMs?: number;
  /** Receives each console message and page error of the page, prefixed (default: stderr). */
  log?: (line: string) => void;
  /** Prefix of the forwarded lines (default '[browser]'). */
  prefix?: string;
}

/**
 * Opens `url` in a new page of `browser`, imports `module`, awaits `fn(...args)` there and
 * returns its result through JSON. Console messages and uncaught page errors go to `log` as
 * they happen. The page is closed afterwards, also on a timeout or an error.
 */
export async function runInPage<T = unknown>(browser: Browser, opts: RunInPageOptions): Promise<T> {
  const { url, module, fn, args = [], timeoutMs = 120_000, prefix = '[browser]' } = opts;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const page = await browser.newPage();
  page.on('console', (m) => log(`${prefix} ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`${prefix} page error: ${e.stack ?? e.message}`));
  page.on('crash', () => log(`${prefix} the page crashed`));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`runInPage: ${module} ${fn}() did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  // A string, not a function: Playwright would send a function's source, which tsx may have
  // rewritten with helpers (__name) that do not exist in the page.
  const script = `(async () => {
    const m = await import(new URL(${JSON.stringify(module)}, location.href).href);
    if (typeof m[${JSON.stringify(fn)}] !== 'function') throw new Error(${JSON.stringify(`${module} exports no function ${fn}`)});
    return JSON.stringify(await m[${JSON.stringify(fn)}](...${JSON.stringify(args)}) ?? null);
  })()`;
  const work = (async () => {
    await page.goto(url, { timeout: timeoutMs });
    return (await page.evaluate(script)) as string;
  })();
  // After a timeout, closing the page rejects `work`: that rejection is expected, not unhandled.
  work.catch(() => {});
  try {
    const json = await Promise.race([work, timeout]);
    return JSON.parse(json) as T;
  } finally {
    clearTimeout(timer);
    await page.close().catch(() => {});
  }
}
