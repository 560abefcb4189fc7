// Shared by the command-line tools: quiet starts on lavapipe.
// Dawn prints two lines to stderr whenever it meets lavapipe ("maxDynamicUniformBuffers... /
// maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 ..."): its
// Limits.cpp clamps the 1,000,000 dynamic buffers lavapipe reports to the 16 WebGPU allows and
// logs it with a plain fprintf, during requestAdapter, with no flag to turn it off. The engine
// asks for neither limit; the clamp is harmless. Node cannot redirect a native library's fd 2,
// so a tool that starts Dawn runs its work in a child process whose stderr passes through
// here with exactly those two lines removed (VQ_DAWN_WARNINGS=show keeps them).
import { spawn } from 'node:child_process';

const NOISE = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;
const NOISE_START = 'Warning: maxDynamic';
const CHILD_ENV = 'VQ_CLI_CHILD';

/** Removes the two Dawn lines from a stream of stderr text; partial lines pass at once unless they may become one. */
export class NoiseFilter {
  private held = '';
  constructor(private readonly write: (s: string) => void) {}

  push(chunk: string): void {
    const text = this.held + chunk;
    this.held = '';
    const lines = text.split('\n');
    const last = lines.pop()!;
    const kept = lines.filter((l) => !NOISE.test(l));
    if (kept.length) this.write(kept.map((l) => `${l}\n`).join(''));
    // a progress bar redraws without newlines: only a line that may still become a Dawn line waits
    if (NOISE_START.startsWith(last) || last.startsWith(NOISE_START)) this.held = last;
    else if (last) this.write(last);
  }

  end(): void {
    if (this.held && !NOISE.test(this.held)) this.write(this.held);
    this.held = '';
  }
}

/**
 * In the tool's own process: runs the same command again as a child with the Dawn lines
 * filtered out of its stderr, forwards signals to it, and resolves with its exit code.
 * In the child (or with VQ_DAWN_WARNINGS=show): resolves null, and the tool carries on.
 */
export async function relaunchWithoutDawnNoise(): Promise<number | null> {
  if (process.env[CHILD_ENV]) {
    childSetup();
    return null;
  }
  if (process.env.VQ_DAWN_WARNINGS === 'show') return null;
  const err = process.stderr;
  // the child gets its own process group, so a terminal's Ctrl-C reaches it once, through here
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['ignore', 'inherit', 'pipe'],
    detached: true,
    env: { ...process.env, [CHILD_ENV]: String(process.pid), VQ_STDERR_TTY: err.isTTY ? String(err.columns || 100) : '' },
  });
  const filter = new NoiseFilter((s) => err.write(s));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => filter.push(s));
  const forward = (sig: NodeJS.Signals) => {
    try {
      child.kill(sig);
    } catch {}
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forward);
  return new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      filter.end();
      resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 2));
    });
  });
}

/**
 * Registers the tool's SIGINT / SIGTERM handler. In a relaunched child a signal may come twice
 * at once, directly (a terminal's Ctrl-C or SLURM signal every process) and forwarded by the
 * parent: the same signal again within a second counts once, so a first stop request is never
 * taken for a second (which quits without saving).
 */
export function onStopSignals(handler: (sig: NodeJS.Signals) => void): void {
  const last: Partial<Record<NodeJS.Signals, number>> = {};
  const relaunched = process.env.VQ_RELAUNCHED === '1';
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      const now = Date.now();
      if (relaunched && now - (last[sig] ?? -Infinity) < 1000) return;
      last[sig] = now;
      handler(sig);
    });
  }
}

/** In the child: stderr is a pipe to the parent, so say whether the parent's is a terminal; stop if the parent dies. */
function childSetup(): void {
  const tty = process.env.VQ_STDERR_TTY;
  if (tty) {
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    Object.defineProperty(process.stderr, 'columns', { value: Number(tty), configurable: true });
  }
  const parent = Number(process.env[CHILD_ENV]);
  delete process.env[CHILD_ENV]; // the tool's own children are not relaunched children
  delete process.env.VQ_STDERR_TTY;
  process.env.VQ_RELAUNCHED = '1';
  // orphaned (the parent was killed outright): stop as if told to
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, 2000);
  timer.unref();
}
