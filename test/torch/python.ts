// The Python that runs the PyTorch checks: $VQ_TORCH_PYTHON, else the first of python3 and
// /usr/bin/python3 that imports torch and numpy (Debian's python3-torch is installed for
// /usr/bin/python3, which another python3 on PATH may hide). Without one the checks skip,
// except under CI=true, where CI installs python3-torch and a missing torch fails them: a
// skipped cross-check there would prove nothing.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export interface TorchPython {
  /** The interpreter to run. */
  python: string;
  /** torch.__version__. */
  version: string;
}

/** The reference scripts' folder (vqvae_ref.py, st_io.py). */
export const TORCH_DIR = resolve(import.meta.dirname);

function probe(python: string): TorchPython | null {
  const r = spawnSync(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? { python, version: r.stdout.trim() } : null;
}

function find(): TorchPython | null {
  const candidates = process.env.VQ_TORCH_PYTHON ? [process.env.VQ_TORCH_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const p of candidates) {
    const found = probe(p);
    if (found) return found;
  }
  return null;
}

export const torchPython: TorchPython | null = find();

const MISSING = 'torch and numpy are not installed for python3 (Debian: apt-get install python3-torch python3-numpy; or set VQ_TORCH_PYTHON)';

type Tap = {
  test: (name: string, opts: { skip?: string | boolean }, fn: (t: any) => Promise<void>) => unknown;
};

/**
 * A test that needs torch: skipped without it, failed without it under CI=true.
 * `fn` gets the subtest and the Python to run.
 */
export function torchTest<T>(t: Tap, name: string, fn: (t: T, py: TorchPython) => Promise<void>): void {
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  const skip = torchPython || ci ? false : MISSING;
  t.test(name, { skip }, async (tt: T & { fail: (msg: string) => void }) => {
    if (!torchPython) {
      tt.fail(`${MISSING}: under CI=true the PyTorch checks must run, not skip`);
      return;
    }
    await fn(tt, torchPython);
  });
}

/** Runs a reference script (or `-c CODE`) with the torch Python; throws with its stderr on failure. */
export function runPython(py: TorchPython, args: string[], opts: { input?: string; timeout?: number } = {}): string {
  const r = spawnSync(py.python, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeout ?? 600_000, maxBuffer: 1 << 28, cwd: TORCH_DIR });
  if (r.status !== 0) throw new Error(`${py.python} ${args.slice(0, 2).join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').slice(-2000)}`);
  return r.stdout;
}
