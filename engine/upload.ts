// Uploading bytes and widening them on the GPU: a batch of uint8 images goes up as bytes (a
// quarter of the f32 bytes) and shaders/upload.wgsl maps each byte through a 256-entry f32
// table into an f32 tensor. The table is the caller's (computed on the CPU exactly as its CPU
// path computes each value), so the GPU's result equals the CPU's bit for bit.
import { paramBlock, shaderKernel } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type Tensor, empty, keep, tensor } from './tensor.js';

/** words: 32-bit words of input (4 bytes each) to widen. */
const UPLOAD_PARAMS = paramBlock({ words: 'u32' });

/**
 * One device buffer that byte arrays of up to `capacity` bytes are written into, and the table
 * that widens them. A single buffer is safe to rewrite every step: write() submits the work
 * recorded so far first, and queue.writeBuffer then lands after every submitted command that
 * reads the previous bytes (queue order).
 */
export class ByteInput {
  private readonly bytes: Tensor;
  private readonly table: Tensor;
  /** Bytes written by the last write(). */
  length = 0;

  constructor(
    readonly capacity: number,
    table: Float32Array,
  ) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new Error(`ByteInput: capacity must be a positive integer, got ${capacity}`);
    if (table.length !== 256) throw new Error(`ByteInput: the table needs 256 entries, got ${table.length}`);
    this.bytes = keep(empty([Math.ceil(capacity / 4)], 'u32'));
    this.table = keep(tensor(table, [256]));
  }

  /** Writes `data` to the device (after the work recorded so far, in queue order). */
  write(data: Uint8Array): void {
    if (data.length > this.capacity) throw new Error(`ByteInput.write: ${data.length} bytes for a ${this.capacity}-byte input`);
    rt().overwrite(this.bytes.buffer, data);
    this.length = data.length;
  }

  /** A new f32 tensor of `shape` (its size the bytes written last): element i is table[byte i]. */
  widen(shape: readonly number[]): Tensor {
    const out = empty(shape);
    if (out.size !== this.length) throw new Error(`ByteInput.widen: shape [${shape.join(', ')}] holds ${out.size} values, the input ${this.length} bytes`);
    const words = Math.ceil(this.length / 4);
    const k = shaderKernel('upload', 'widen', {}, UPLOAD_PARAMS);
    rt().dispatch(k, [this.bytes.buffer, this.table.buffer, out.buffer], UPLOAD_PARAMS.pack({ words }), grid1d(Math.ceil(words / 256)));
    return out;
  }

  dispose(): void {
    this.bytes.dispose();
    this.table.dispose();
  }
}
