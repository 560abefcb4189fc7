// Metrics of a run: one row per logged step (split 'train': means over the steps since the
// previous row) and per validation (split 'valid'), appended to metrics.jsonl and metrics.csv.
// On resume the files are cut back to the checkpoint's step, so a resumed run's files read as
// if it had never stopped. The VQ-VAE's rows are MetricRow; the prior's have columns of their
// own (train/prior.ts), written by the same MetricsLog.
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface MetricRow {
  step: number;
  split: 'train' | 'valid';
  /** The training loss: recon + codebook + commitment (recon + commitment with an EMA codebook). */
  loss: number;
  recon_mse: number;
  /** mean((e_k - z_e)^2), reported also with an EMA codebook, where it is not part of the loss. */
  codebook_loss: number;
  /** beta * mean((e_k - z_e)^2). */
  commitment_loss: number;
  /** Batch perplexity (mean over the row's batches). */
  perplexity: number;
  /** Distinct codes used over the row's batches. */
  codebook_usage: number;
  /** 10 log10(1 / recon_mse). */
  psnr: number;
  lr: number | null;
  images_per_s: number | null;
  /** Training time so far (excluding time spent stopped between resumes). */
  elapsed_s: number | null;
}

export const METRIC_COLUMNS: (keyof MetricRow)[] = [
  'step',
  'split',
  'loss',
  'recon_mse',
  'codebook_loss',
  'commitment_loss',
  'perplexity',
  'codebook_usage',
  'psnr',
  'lr',
  'images_per_s',
  'elapsed_s',
];

export function psnr(mse: number): number {
  return 10 * Math.log10(1 / mse);
}

/** What every metrics row has: its step and its split. */
export interface RowBase {
  step: number;
  split: 'train' | 'valid';
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  return String(v); // NaN and Infinity stay visible
}

/** JSON with non-finite numbers as strings ("NaN", "Infinity"), which JSON cannot hold. */
function rowJson(r: object): string {
  return JSON.stringify(r, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}

function parseRow<R extends RowBase>(line: string): R {
  const o = JSON.parse(line) as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (o[k] === 'NaN') o[k] = NaN;
    else if (o[k] === 'Infinity') o[k] = Infinity;
    else if (o[k] === '-Infinity') o[k] = -Infinity;
  }
  return o as unknown as R;
}

/** Reads metrics.jsonl (an unfinished last line, from a crash mid-write, is dropped). */
export function readMetrics<R extends RowBase = MetricRow>(path: string): R[] {
  if (!existsSync(path)) return [];
  const rows: R[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      rows.push(parseRow<R>(line));
    } catch {
      /* a torn last line */
    }
  }
  return rows;
}

export class MetricsLog<R extends RowBase = MetricRow> {
  readonly rows: R[] = [];

  constructor(
    readonly jsonlPath: string,
    readonly csvPath: string,
    readonly columns: readonly (keyof R)[] = METRIC_COLUMNS as unknown as (keyof R)[],
  ) {}

  /**
   * Starts the files: empty for a new run; for a resumed run, keeps the rows up to and
   * including `step` (rewritten atomically) and returns them.
   */
  start(resumeStep: number | null): R[] {
    const kept = resumeStep === null ? [] : readMetrics<R>(this.jsonlPath).filter((r) => r.step <= resumeStep);
    this.rows.length = 0;
    this.rows.push(...kept);
    this.rewrite();
    return kept;
  }

  append(row: R): void {
    this.rows.push(row);
    appendFileSync(this.jsonlPath, rowJson(row) + '\n');
    appendFileSync(this.csvPath, this.csvLine(row) + '\n');
  }

  private csvLine(row: R): string {
    return this.columns.map((c) => csvCell(row[c])).join(',');
  }

  private rewrite(): void {
    const write = (path: string, text: string) => {
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, text);
      renameSync(tmp, path);
    };
    write(this.jsonlPath, this.rows.map((r) => rowJson(r) + '\n').join(''));
    write(this.csvPath, [this.columns.join(','), ...this.rows.map((r) => this.csvLine(r))].join('\n') + '\n');
  }
}
