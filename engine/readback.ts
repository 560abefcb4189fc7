// Reading scalars back without waiting: each row of values (a training step's losses) is copied
// on the GPU into a staging buffer of its own, mapped once the work that writes it is
// submitted, and taken on the CPU later, when the GPU has long finished it. A ring of such
// buffers lets the CPU record the next steps while earlier rows are still on their way; a
// blocking read (Runtime.read) would make every step wait for the GPU.
import { GpuError, rt } from './runtime.js';
import type { Tensor } from './tensor.js';

/** One row as it arrived: its tag and its values (NaN for a field not written). */
export interface RingRow {
  tag: number;
  values: Float32Array;
}

interface Slot {
  buffer: GPUBuffer;
  state: 'free' | 'written' | 'mapping';
  tag: number;
  /** Which fields the row wrote. */
  written: boolean[];
  mapped: Promise<void> | null;
}

/** A ring of `capacity` MAP_READ staging rows of `width` 4-byte values each. */
export class MetricsRing {
  private readonly slots: Slot[];
  /** Slots holding a row not yet taken, oldest first. */
  private readonly order: number[] = [];
  private next = 0;

  constructor(
    readonly width: number,
    readonly capacity: number,
  ) {
    if (!(Number.isInteger(width) && width >= 1)) throw new Error(`MetricsRing: width must be a positive integer, got ${width}`);
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new Error(`MetricsRing: capacity must be a positive integer, got ${capacity}`);
    const device = rt().device;
    this.slots = Array.from({ length: capacity }, (_, i) => ({
      buffer: device.createBuffer({ size: width * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `metrics-ring-${i}` }),
      state: 'free' as const,
      tag: 0,
      written: [],
      mapped: null,
    }));
  }

  /** Rows written and not yet taken. */
  get pending(): number {
    return this.order.length;
  }

  /** Whether every slot holds a row not yet taken (take() one before the next write). */
  get full(): boolean {
    return this.order.length === this.capacity;
  }

  /**
   * Records GPU copies of `values` (one-element f32 tensors, or null for a field this row
   * leaves unwritten) into the next slot, in stream order after the work recorded so far.
   */
  write(tag: number, values: readonly (Tensor | null)[]): void {
    if (values.length !== this.width) throw new Error(`MetricsRing.write: ${values.length} values for a ring ${this.width} wide`);
    if (this.full) throw new Error(`MetricsRing.write: all ${this.capacity} rows are pending; take() one first`);
    const slot = this.slots[this.next];
    const r = rt();
    values.forEach((t, i) => {
      if (t && (t.size !== 1 || t.dtype !== 'f32')) throw new Error(`MetricsRing.write: field ${i} needs a one-element f32 tensor, got ${t.describe()}`);
      if (t) r.copy(t.buffer, 0, slot.buffer, i * 4, 4);
    });
    slot.state = 'written';
    slot.tag = tag;
    slot.written = values.map((t) => t !== null);
    this.order.push(this.next);
    this.next = (this.next + 1) % this.capacity;
  }

  /** Submits the recorded work and starts mapping the rows written since the last commit. */
  commit(): void {
    const written = this.order.filter((i) => this.slots[i].state === 'written');
    if (written.length === 0) return;
    rt().flush();
    for (const i of written) {
      const slot = this.slots[i];
      slot.state = 'mapping';
      slot.mapped = slot.buffer.mapAsync(GPUMapMode.READ, 0, this.width * 4);
      slot.mapped.catch(() => {}); // take() reports it
    }
  }

  /** The oldest pending row, once the GPU has written it (commits it first if need be). */
  async take(): Promise<RingRow> {
    const i = this.order[0];
    if (i === undefined) throw new Error('MetricsRing.take: no pending row');
    const slot = this.slots[i];
    if (slot.state === 'written') this.commit();
    try {
      await slot.mapped;
    } catch (e) {
      await rt().checkErrors();
      throw new GpuError(`Reading a metrics row back failed: ${(e as Error).message}`);
    }
    const raw = new Float32Array(slot.buffer.getMappedRange(0, this.width * 4).slice(0));
    slot.buffer.unmap();
    this.order.shift();
    slot.state = 'free';
    slot.mapped = null;
    return { tag: slot.tag, values: raw.map((v, k) => (slot.written[k] ? v : NaN)) };
  }

  /** Every pending row, oldest first (waits for the GPU to finish them). */
  async drain(): Promise<RingRow[]> {
    const rows: RingRow[] = [];
    while (this.pending > 0) rows.push(await this.take());
    return rows;
  }

  /** Destroys the staging buffers (pending rows are dropped). */
  dispose(): void {
    for (const s of this.slots) s.buffer.destroy();
    this.order.length = 0;
  }
}
