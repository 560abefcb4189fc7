// Atomic file writes: the contents go to a temporary file that is then renamed over the
// target, so a reader (or a crash) sees the old file or the new one, never a torn one.
import { renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * A temporary name beside `path`, unique across processes and machines: tasks on different
 * nodes of a cluster share folders, and their process ids can coincide.
 */
export function tmpPath(path: string): string {
  return `${path}.${hostname()}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

/** Writes a file whole or not at all. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = tmpPath(path);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
