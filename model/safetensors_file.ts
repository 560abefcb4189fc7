// safetensors files on Node: reading checks the file size before reading it whole, then
// decodes with safetensors.ts's validation; writing is atomic: a temporary file in the same
// folder, fsync, then rename over the target. Node-only (node:fs); pages use the byte
// functions of safetensors.ts directly.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type ParsedSafetensors, SafetensorsError, type WriteEntry, decodeSafetensors, encodeSafetensors } from './safetensors.js';

/** Largest file read by default (4 GiB). */
export const MAX_FILE_BYTES = 4 * 1024 ** 3;

/** Writes bytes to `path` atomically: nothing at `path` changes unless the whole write succeeds. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    let at = 0;
    while (at < bytes.byteLength) at += writeSync(fd, bytes, at, bytes.byteLength - at);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {}
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

export function writeSafetensors(path: string, entries: Record<string, WriteEntry>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(entries, metadata));
}

/**
 * A whole file's bytes, refusing files over `maxBytes` before allocating anything (a
 * SafetensorsError naming the path). Errors from the file system (ENOENT, ...) pass through.
 */
export function readFileBytes(path: string, maxBytes = MAX_FILE_BYTES): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new SafetensorsError(`${path}: ${size} bytes exceeds the ${maxBytes}-byte limit`);
    const bytes = new Uint8Array(size);
    let at = 0;
    while (at < size) {
      const got = readSync(fd, bytes, at, size - at, at);
      if (got === 0) break;
      at += got;
    }
    return bytes.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads and validates a safetensors file. `maxBytes` bounds the file size read (default
 * 4 GiB); the header length is checked against the real file size before anything large is
 * allocated.
 */
export function readSafetensors(path: string, maxBytes = MAX_FILE_BYTES): ParsedSafetensors {
  return decodeSafetensors(readFileBytes(path, maxBytes), path);
}
