// Scalars recorded on the GPU without a sync: each step's loss terms are copied into one
// buffer (rows x fields), which is read back once per logging interval. Reading a value
// every step would make every step wait for the GPU.
import { rt } from '../engine/runtime.js';
import { type Tensor, empty, keep } from '../engine/tensor.js';

export class ScalarLog {
  private buf: Tensor;
  /** Rows recorded since the last read. */
  count = 0;

  constructor(
    readonly fields: readonly string[],
    readonly capacity: number,
  ) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new Error(`ScalarLog: capacity must be a positive integer, got ${capacity}`);
    this.buf = keep(empty([capacity, fields.length]));
  }

  /** Records one row: a [] or [1] f32 tensor per field (copied on the GPU, in stream order). */
  record(values: readonly Tensor[]): void {
    if (values.length !== this.fields.length) throw new Error(`ScalarLog.record: ${values.length} values for ${this.fields.length} fields`);
    if (this.count >= this.capacity) throw new Error(`ScalarLog: more than ${this.capacity} rows before a read`);
    const r = rt();
    values.forEach((t, i) => {
      if (t.size !== 1 || t.dtype !== 'f32') throw new Error(`ScalarLog.record: field ${this.fields[i]} needs a one-element f32 tensor, got ${t.describe()}`);
      r.copy(t.buffer, 0, this.buf.buffer, (this.count * this.fields.length + i) * 4, 4);
    });
    this.count++;
  }

  /** The recorded rows (waits for the GPU), one object per row; starts a new interval. */
  async read(): Promise<Record<string, number>[]> {
    const n = this.count;
    this.count = 0;
    if (n === 0) return [];
    const f = this.fields.length;
    const v = new Float32Array(await rt().read(this.buf.buffer, n * f * 4));
    const rows: Record<string, number>[] = [];
    for (let i = 0; i < n; i++) {
      const row: Record<string, number> = {};
      this.fields.forEach((name, j) => (row[name] = v[i * f + j]));
      rows.push(row);
    }
    return rows;
  }

  dispose(): void {
    this.buf.dispose();
  }
}
