// Size-bucketed pool of storage buffers. A released buffer becomes reusable only after the
// command buffer that may still use it was submitted: queue.writeBuffer runs before any
// not-yet-submitted commands, so handing it out earlier could overwrite data still to be read.

// GPUBufferUsage.STORAGE | COPY_SRC | COPY_DST (numeric: the globals may not be installed yet),
// and UNIFORM so a small tensor can be bound as a uniform array (on CPU devices the nearest-code
// kernel reads a small codebook, and the conv kernel small packed weights, that way).
const STORAGE_USAGE = 0x80 | 0x04 | 0x08 | 0x40;

/** Rounds a byte size up to its bucket: powers of two up to 1 MiB, then eighths of a power of two. */
export function bucketSize(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** Math.floor(Math.log2(b)) / 8;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Bytes in buffers handed out and not yet released. */
  liveBytes: number;
  liveBuffers: number;
  /** Bytes in free buffers kept for reuse (including ones waiting for a submit). */
  pooledBytes: number;
  pooledBuffers: number;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private waiting: GPUBuffer[] = [];
  private liveBytes = 0;
  private liveBuffers = 0;
  private pooledBytes = 0;
  private pooledBuffers = 0;
  /** Free bytes kept at most; beyond this released buffers are destroyed. */
  maxPooledBytes = 2 * 1024 ** 3;
  /** Called just before the pool destroys a buffer (the runtime drops bind groups holding it). */
  onDestroy: ((buf: GPUBuffer) => void) | null = null;

  constructor(private device: GPUDevice) {}

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = bucketSize(bytes);
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.pooledBytes -= size;
      this.pooledBuffers--;
    } else {
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
    }
    this.liveBytes += size;
    this.liveBuffers++;
    return buf;
  }

  /** Returns a buffer; it is reused only after the next submit (see `submitted`). */
  release(buf: GPUBuffer): void {
    this.liveBytes -= buf.size;
    this.liveBuffers--;
    this.pooledBytes += buf.size;
    this.pooledBuffers++;
    this.waiting.push(buf);
  }

  /** Called right after a queue submit: buffers released before it may now be reused. */
  submitted(): void {
    for (const buf of this.waiting) {
      if (this.pooledBytes > this.maxPooledBytes) {
        this.pooledBytes -= buf.size;
        this.pooledBuffers--;
        this.destroy(buf);
        continue;
      }
      let list = this.free.get(buf.size);
      if (!list) this.free.set(buf.size, (list = []));
      list.push(buf);
    }
    this.waiting = [];
  }

  /** Destroys every free buffer (waiting ones are kept until the next submit). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const buf of list) {
        this.pooledBytes -= buf.size;
        this.pooledBuffers--;
        this.destroy(buf);
      }
    }
    this.free.clear();
  }

  private destroy(buf: GPUBuffer): void {
    this.onDestroy?.(buf);
    buf.destroy();
  }

  stats(): PoolStats {
    return {
      liveBytes: this.liveBytes,
      liveBuffers: this.liveBuffers,
      pooledBytes: this.pooledBytes,
      pooledBuffers: this.pooledBuffers,
    };
  }
}
