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
  /** Most bytes handed out at once since the last resetPeak (or since the pool was made). */
  peakLiveBytes: number;
  /** Most bytes the pool held at once (handed out + free) since the last resetPeak. */
  peakHeldBytes: number;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private waiting: GPUBuffer[] = [];
  private liveBytes = 0;
  private liveBuffers = 0;
  private pooledBytes = 0;
  private pooledBuffers = 0;
  private peakLiveBytes = 0;
  private peakHeldBytes = 0;
  /** Free bytes kept at most; beyond this released buffers are destroyed. */
  maxPooledBytes = 2 * 1024 ** 3;
  /** Called just before the pool destroys a buffer (the runtime drops bind groups holding it). */
  onDestroy: ((buf: GPUBuffer) => void) | null = null;
  /** Called when a buffer is released (a recorded step that binds it can no longer replay). */
  onRelease: ((buf: GPUBuffer) => void) | null = null;
  /** Called when a buffer is handed out (a step being recorded notes when each buffer changed owner). */
  onAcquire: ((buf: GPUBuffer) => void) | null = null;

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
    this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    this.peakHeldBytes = Math.max(this.peakHeldBytes, this.liveBytes + this.pooledBytes);
    this.onAcquire?.(buf);
    return buf;
  }

  /** Returns a buffer; it is reused only after the next submit (see `submitted`). */
  release(buf: GPUBuffer): void {
    this.liveBytes -= buf.size;
    this.liveBuffers--;
    this.pooledBytes += buf.size;
    this.pooledBuffers++;
    this.waiting.push(buf);
    this.onRelease?.(buf);
  }

  /**
   * Takes `buf` out of the pool if it is free there (a recorded step's static memory plan owns
   * it until it gives it back with release); false if it is not a free buffer of this pool.
   */
  pin(buf: GPUBuffer): boolean {
    let at = this.waiting.indexOf(buf);
    let list = this.waiting;
    if (at < 0) {
      list = this.free.get(buf.size) ?? [];
      at = list.indexOf(buf);
    }
    if (at < 0) return false;
    list.splice(at, 1);
    this.pooledBytes -= buf.size;
    this.pooledBuffers--;
    this.liveBytes += buf.size;
    this.liveBuffers++;
    return true;
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

  /** Starts the peaks over from what is held now (the bench measures one step's peak this way). */
  resetPeak(): void {
    this.peakLiveBytes = this.liveBytes;
    this.peakHeldBytes = this.liveBytes + this.pooledBytes;
  }

  stats(): PoolStats {
    return {
      liveBytes: this.liveBytes,
      liveBuffers: this.liveBuffers,
      pooledBytes: this.pooledBytes,
      pooledBuffers: this.pooledBuffers,
      peakLiveBytes: this.peakLiveBytes,
      peakHeldBytes: this.peakHeldBytes,
    };
  }
}
