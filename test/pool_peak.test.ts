// The buffer pool's peaks: the most bytes handed out at once and the most held (handed out +
// free), each from resetPeak on, in bucket sizes.
import t from 'tap';
import { BufferPool } from '../engine/pool.js';
import { gpu } from './helpers.js';

const r = await gpu(t);

t.test('peaks follow acquire, release and reuse, and start over at resetPeak', async (t) => {
  const pool = new BufferPool(r.device);
  t.match(pool.stats(), { peakLiveBytes: 0, peakHeldBytes: 0 }, 'a new pool: no peak');
  const a = pool.acquire(3000); // bucket 4096
  const b = pool.acquire(1000); // bucket 1024
  t.match(pool.stats(), { peakLiveBytes: 5120, peakHeldBytes: 5120 });
  pool.release(a);
  const c = pool.acquire(4096); // a waits for a submit: a fresh buffer, held grows
  t.match(pool.stats(), { liveBytes: 5120, peakLiveBytes: 5120, peakHeldBytes: 9216 }, 'live back at 5120, held 9216');
  pool.submitted();
  pool.release(c);
  pool.submitted();
  const d = pool.acquire(4000); // reused: nothing new is held
  t.match(pool.stats(), { liveBytes: 5120, pooledBytes: 4096, peakHeldBytes: 9216 });
  pool.trim();
  t.match(pool.stats(), { pooledBytes: 0, peakHeldBytes: 9216 }, 'trim drops free bytes, not the peak');
  pool.resetPeak();
  t.match(pool.stats(), { peakLiveBytes: 5120, peakHeldBytes: 5120 }, 'reset: the peaks are what is held now');
  pool.release(b);
  pool.release(d);
  pool.submitted();
  pool.trim();
  pool.resetPeak();
  t.match(pool.stats(), { liveBytes: 0, pooledBytes: 0, peakLiveBytes: 0, peakHeldBytes: 0 });
  const big = pool.acquire((1 << 20) + 1); // above 1 MiB: eighths of a power of two
  t.equal(pool.stats().peakLiveBytes, (1 << 20) + (1 << 17));
  pool.release(big);
  pool.submitted();
  pool.trim();
});
