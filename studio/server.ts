// The studio's local server: serves the built page and, read-only, the files of one run
// folder, on 127.0.0.1 only. Safe to leave running: nothing outside the page and that folder is
// reachable (.., absolute paths, encoded variants and symlinks out of the folder are refused),
// no CORS headers are sent, requests for another Host are refused (DNS rebinding), and
// nothing is ever written.
//
//   npm run studio [-- runs/<name>] [--port N] [--no-build]
import { existsSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { basename, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.csv': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

/** Headers on every response: no CORS, no sniffing, the page's own origin only. */
const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Content-Security-Policy': "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
};

export interface StudioServerOptions {
  /** The built page (vite's outDir). */
  dist: string;
  /** The run folder to offer under /run/ (null: none; the page opens files the user picks). */
  runDir?: string | null;
  /** Default 0: a free port. */
  port?: number;
}

export interface StudioServer {
  url: string;
  close(): Promise<void>;
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * The file under `root` a URL path names, or the status that refuses it: 403 for anything that
 * would leave the folder (checked on the decoded path and again on the real path, after
 * symlinks), 404 for what is not a regular file.
 */
export function resolveInside(root: string, urlPath: string): { file: string } | { status: 400 | 403 | 404 } {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return { status: 400 };
  }
  // Refused before any lookup: '..' segments, NUL, backslashes (Windows separators) and a
  // second round of encoding ('%252e' arriving as '%2e'), none of which a page asks for.
  if (!path.startsWith('/') || path.includes('\0') || path.includes('\\') || /%[0-9a-f]{2}/i.test(path)) return { status: 403 };
  if (path.split('/').some((s) => s === '..' || s === '.')) return { status: 403 };
  const full = resolve(root, `.${path}`);
  if (!inside(root, full)) return { status: 403 };
  let real: string;
  try {
    real = realpathSync(full);
  } catch {
    return { status: 404 };
  }
  if (!inside(root, real)) return { status: 403 };
  if (!statSync(real).isFile()) return { status: 404 };
  return { file: real };
}

/** The run folder's regular files (relative paths, '/'-separated), symlinks out of it left out. */
export function listRun(root: string, limit = 5000): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (dir: string, depth: number) => {
    for (const name of readdirSync(dir).sort()) {
      if (out.length >= limit) return;
      const p = join(dir, name);
      let real: string;
      try {
        real = realpathSync(p);
      } catch {
        continue;
      }
      if (!inside(root, real)) continue;
      const st = statSync(real);
      if (st.isDirectory() && !lstatSync(p).isSymbolicLink() && depth < 4) walk(p, depth + 1);
      else if (st.isFile()) out.push({ path: relative(root, p).split(sep).join('/'), size: st.size });
    }
  };
  walk(root, 0);
  return out;
}

export async function startStudioServer(opts: StudioServerOptions): Promise<StudioServer> {
  const dist = realpathSync(opts.dist);
  if (!existsSync(join(dist, 'index.html'))) throw new Error(`${opts.dist} holds no index.html: build the page first (npm run build:studio)`);
  const runDir = opts.runDir ? realpathSync(opts.runDir) : null;
  if (runDir && !statSync(runDir).isDirectory()) throw new Error(`${opts.runDir} is not a folder`);
  let port = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const reply = (status: number, body: string | Uint8Array = '', type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'Content-Type': type, ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    // Only this machine's names for this server: another site that rebinds its DNS name to
    // 127.0.0.1 sends its own Host and is refused.
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return reply(403, 'forbidden host\n');
    const raw = (req.url ?? '/').split(/[?#]/)[0];
    if (raw === '/api/run') {
      if (!runDir) return reply(404, 'no run folder\n');
      const body = JSON.stringify({ name: basename(runDir), files: listRun(runDir) });
      return reply(200, body, TYPES['.json']);
    }
    let root = dist;
    let path = raw;
    if (raw.startsWith('/run/')) {
      if (!runDir) return reply(404, 'no run folder\n');
      root = runDir;
      path = raw.slice('/run'.length);
    } else if (raw.endsWith('/')) {
      path += 'index.html';
    }
    const found = resolveInside(root, path);
    if ('status' in found) {
      if (found.status === 404 && raw === '/favicon.ico') return reply(204);
      return reply(found.status, found.status === 403 ? 'forbidden\n' : found.status === 400 ? 'bad path\n' : 'not found\n');
    }
    reply(200, await readFile(found.file), TYPES[extname(found.file).toLowerCase()] ?? 'application/octet-stream');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      res.end(`${(e as Error).message}\n`);
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('studio: the server has no TCP address');
  port = address.port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
export const STUDIO_ROOT = HERE;
export const STUDIO_DIST = join(HERE, 'dist');

/** Builds the page with Vite into `outDir` (default studio/dist). */
export async function buildStudio(outDir = STUDIO_DIST, opts: { quiet?: boolean } = {}): Promise<void> {
  const { build } = await import('vite');
  await build({ configFile: join(HERE, 'vite.config.ts'), root: HERE, logLevel: opts.quiet ? 'silent' : 'warn', build: { outDir, emptyOutDir: true } });
}

function help(): string {
  return [
    'Usage: npm run studio [-- RUN_DIR] [options]',
    '',
    'Builds the VQ-VAE studio page and serves it on 127.0.0.1; with RUN_DIR (runs/<name>) the',
    "page opens with that run loaded (checkpoint, prior if any, metrics). The run folder is",
    'served read-only; nothing else on this machine is reachable.',
    '',
    'Options:',
    '  -p, --port N    port (default: a free one)',
    '      --no-build  serve the existing studio/dist as it is',
    '  -h, --help      this text',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { port: { type: 'string', short: 'p' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return console.log(help());
  if (positionals.length > 1) throw new Error(`one run folder at most, got ${positionals.join(' ')}`);
  const runDir = positionals[0] ?? null;
  if (runDir && !existsSync(join(runDir, 'config.json')) && !existsSync(join(runDir, 'metrics.jsonl'))) {
    throw new Error(`${runDir}: no config.json or metrics.jsonl there (not a run folder?)`);
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer 0-65535, got ${values.port}`);
  if (!values['no-build']) await buildStudio(STUDIO_DIST);
  const s = await startStudioServer({ dist: STUDIO_DIST, runDir, port });
  console.log(`VQ-VAE studio: ${s.url}${runDir ? ` (run ${runDir})` : ''}  (Ctrl-C to stop)`);
  const stop = () => void s.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`studio: ${(e as Error).message}`);
    process.exit(1);
  });
}
