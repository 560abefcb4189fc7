// Progress while training: a tqdm-style bar redrawn in place on a terminal, or plain lines at
// each logging step when the output is not a terminal (a GPU box's log file, CI).
//   bar:   " 34%|######4      | 412/1200 [01:23<02:40, 4.95 it/s, loss=0.0123, ppl=213.4]"
//   lines: "step 400/1200 (33%)  loss 0.01234  recon 0.00456  ppl 213.4  usage 301/512  39.6 img/s  elapsed 1:23  eta 2:40"

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${String(m).padStart(2, '0')}:${ss}`;
}

/** A short, fixed-precision number for progress output. */
export function fmt(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return '-';
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return v.toPrecision(digits);
}

export interface ProgressState {
  step: number;
  total: number;
  /** Seconds of training so far (this session plus earlier ones). */
  elapsed: number;
  /** Steps per second over the recent past. */
  rate: number;
  loss?: number;
  recon?: number;
  perplexity?: number;
  usage?: number;
  codebookSize?: number;
  imagesPerSecond?: number;
  /** Seconds spent compiling GPU kernels while no warm step has been timed yet (shown instead of an ETA). */
  compiling?: number;
}

/** What stands where the ETA goes: the time left, or while a cold start compiles, that. */
function etaText(s: ProgressState): string {
  if (s.rate > 0) return formatDuration((s.total - s.step) / s.rate);
  return s.compiling !== undefined ? `compiling kernels ${formatDuration(s.compiling)}` : '?';
}

/**
 * Step timing for ETAs that leaves out a cold start: the steps that compiled GPU kernels, and
 * the one after each (it waits for the GPU to finish them; a CPU driver such as lavapipe
 * compiles the machine code only when a kernel first runs). Those first steps take minutes on
 * a CPU device and would promise hour-long runs; instead they say that kernels are compiling,
 * and every few seconds for how long so far.
 */
export class StepClock {
  /** Steps per second over the steps since the last cold one (0 until two are timed). */
  rate = 0;
  /** Kernels compiled since the clock started. */
  kernels = 0;
  private before = 0;
  private settle = 0;
  private coldSince = 0;
  private warmStart = performance.now();
  private warmSteps = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastNote = 0;

  constructor(
    private readonly runtime: { pipelineCount: number; onCompile: ((kernel: string) => void) | null },
    private readonly note: (line: string) => void,
    private readonly everyMs = 10_000,
  ) {
    // Called before each compile. A driver compiles inside pipeline creation (the event loop
    // waits: the notes come from here) or when the kernels first run (a timer says that).
    runtime.onCompile = () => {
      this.kernels++;
      if (this.coldSince < 0) return; // warm already: later compiles (validation's kernels) say nothing
      if (this.coldSince === 0) {
        this.coldSince = performance.now();
        this.lastNote = this.coldSince;
        this.note('compiling GPU kernels (a cold start; later steps reuse them) ...');
        this.timer = setInterval(() => this.still(), this.everyMs);
        this.timer.unref?.();
      } else if (performance.now() - this.lastNote >= this.everyMs) {
        this.still();
      }
    };
  }

  private still(): void {
    if (performance.now() - this.lastNote < this.everyMs / 2) return;
    this.lastNote = performance.now();
    this.note(`still compiling GPU kernels: ${this.kernels} so far, ${formatDuration(this.coldSeconds)}`);
  }

  private get coldSeconds(): number {
    return (performance.now() - this.coldSince) / 1000;
  }

  /** Seconds since the cold start began, while no warm rate is known (for ProgressState.compiling). */
  get compiling(): number | undefined {
    return this.coldSince > 0 && this.rate === 0 ? this.coldSeconds : undefined;
  }

  beforeStep(): void {
    this.before = this.runtime.pipelineCount;
  }

  afterStep(): void {
    const now = performance.now();
    if (this.runtime.pipelineCount > this.before) this.settle = 2;
    if (this.settle > 0) {
      this.settle--;
      this.warmStart = now;
      this.warmSteps = 0;
      this.rate = 0;
      return;
    }
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.note(`kernels compiled: the first steps took ${formatDuration(this.coldSeconds)}; the ETA counts from here`);
      this.coldSince = -1; // a cold start is said once
    }
    this.warmSteps++;
    if (this.warmSteps >= 2) this.rate = this.warmSteps / Math.max((now - this.warmStart) / 1000, 1e-9);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.runtime.onCompile = null;
  }
}

export class Progress {
  readonly mode: 'bar' | 'lines' | 'none';
  private lastDraw = 0;
  private barShown = false;

  constructor(
    mode: ProgressMode,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly lineOut: { write(s: string): unknown } = process.stdout,
  ) {
    this.mode = mode === 'auto' ? (out.isTTY ? 'bar' : 'lines') : mode;
  }

  /** Redraws the bar (at most ~10 times a second unless `force`). */
  update(s: ProgressState, force = false): void {
    if (this.mode !== 'bar') return;
    const now = performance.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = Math.max(40, this.out.columns || 100); // a pty may report 0 columns
    const frac = s.total > 0 ? Math.min(1, s.step / s.total) : 0;
    const left = `${String(Math.floor(frac * 100)).padStart(3)}%|`;
    const post = ` ${s.step}/${s.total} [${formatDuration(s.elapsed)}<${etaText(s)}, ${s.rate >= 1 || s.rate === 0 ? s.rate.toFixed(2) : (1 / s.rate).toFixed(2)}${s.rate >= 1 || s.rate === 0 ? ' it/s' : ' s/it'}` +
      (s.loss !== undefined ? `, loss=${fmt(s.loss, 3)}` : '') +
      (s.perplexity !== undefined ? `, ppl=${s.perplexity.toFixed(1)}` : '') +
      ']';
    const barW = Math.max(5, Math.min(40, width - left.length - post.length - 2));
    const filled = frac * barW;
    const full = Math.floor(filled);
    const partial = ' ▏▎▍▌▋▊▉'[Math.floor((filled - full) * 8)] ?? '';
    const bar = '█'.repeat(full) + (full < barW ? partial : '') + ' '.repeat(Math.max(0, barW - full - 1));
    const line = `${left}${bar}|${post}`.slice(0, width - 1);
    this.out.write(`\r${line}\x1b[K`);
    this.barShown = true;
  }

  /** A logging step: a plain line in 'lines' mode; the bar otherwise. */
  log(s: ProgressState): void {
    if (this.mode === 'lines') {
      const pct = s.total > 0 ? Math.floor((100 * s.step) / s.total) : 0;
      this.lineOut.write(
        `step ${s.step}/${s.total} (${pct}%)  loss ${fmt(s.loss)}  recon ${fmt(s.recon)}  ppl ${s.perplexity?.toFixed(1) ?? '-'}` +
          `  usage ${s.usage ?? '-'}/${s.codebookSize ?? '-'}  ${s.imagesPerSecond?.toFixed(1) ?? '-'} img/s` +
          `  elapsed ${formatDuration(s.elapsed)}  eta ${etaText(s)}\n`,
      );
    } else {
      this.update(s, true);
    }
  }

  /** A message on its own line (above the bar on a terminal). */
  message(text: string): void {
    if (this.mode === 'none') return;
    if (this.mode === 'bar' && this.barShown) {
      this.out.write(`\r\x1b[K${text}\n`);
      this.lastDraw = 0;
    } else {
      this.lineOut.write(`${text}\n`);
    }
  }

  /** Ends the bar's line. */
  close(): void {
    if (this.mode === 'bar' && this.barShown) this.out.write('\n');
    this.barShown = false;
  }
}
