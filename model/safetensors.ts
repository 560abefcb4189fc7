// safetensors files: an u64 little-endian header length, a JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}), then
// the raw little-endian row-major data. Reading validates everything before returning
// anything, so a truncated, oversized or hostile file gets an error naming the problem and
// never a crash, a hang or a huge allocation.
// Platform-free (bytes in, bytes out; runs in Node and in web pages): reading and writing
// files lives in safetensors_file.ts.

export type SafeDType = 'F32' | 'F64' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U32' | 'U8';

const DTYPE_BYTES: Record<SafeDType, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, U32: 4, U8: 1 };

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** The raw little-endian bytes, exactly as stored. */
  bytes: Uint8Array;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Largest header accepted (the format's reference implementation uses 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface WriteEntry {
  dtype: SafeDType;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array | BigInt64Array | Uint16Array;
}

/** Serialises tensors (in the given order) and string metadata to safetensors bytes. */
export function encodeSafetensors(entries: Record<string, WriteEntry>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`metadata '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, e] of Object.entries(entries)) {
    if (name === '__metadata__') throw new SafetensorsError(`'__metadata__' cannot name a tensor`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    if (bytes.byteLength !== n * DTYPE_BYTES[e.dtype]) {
      throw new SafetensorsError(`${name}: ${bytes.byteLength} bytes of data for ${e.dtype}[${e.shape}] (${n * DTYPE_BYTES[e.dtype]} expected)`);
    }
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes.byteLength] };
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // pad the header with spaces so the data section starts 8-byte aligned
  const pad = (8 - ((json.byteLength + 8) % 8)) % 8;
  const headerBytes = new Uint8Array(json.byteLength + pad).fill(0x20);
  headerBytes.set(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export interface ParsedSafetensors {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/**
 * Parses and validates safetensors bytes (a file's contents, or an ArrayBuffer a page got from
 * a picked file). `source` names the data in errors (a path or a file name). The tensors'
 * bytes are views into `bytes`, not copies.
 */
export function decodeSafetensors(bytes: Uint8Array | ArrayBuffer, source = 'safetensors data'): ParsedSafetensors {
  const file = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (file.byteLength < 8) fail(`truncated: ${file.byteLength} bytes, not even the 8-byte header length`);
  const headerLen = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const hl = Number(headerLen);
  if (8 + hl > file.byteLength) fail(`truncated: header says ${hl} bytes but the file has ${file.byteLength - 8} after the length`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(file.subarray(8, 8 + hl)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + hl;
  const dataLen = file.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  const tensors = new Map<string, SafeTensor>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (!raw || typeof raw !== 'object') fail(`entry '${name}' is not an object`);
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) fail(`'${name}': unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(`'${name}': shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => !Number.isSafeInteger(o) || o < 0)) fail(`'${name}': data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    const [begin, end] = offs as number[];
    if (begin > end) fail(`'${name}': data_offsets [${begin}, ${end}] run backwards`);
    if (end > dataLen) fail(`'${name}': data_offsets [${begin}, ${end}] reach past the data section (${dataLen} bytes; file truncated?)`);
    let n = 1;
    for (const d of shape as number[]) {
      n *= d;
      if (n > dataLen) break;
    }
    const want = n * DTYPE_BYTES[dtype as SafeDType];
    if (want !== end - begin) fail(`'${name}': ${dtype}[${(shape as number[]).join(', ')}] needs ${want} bytes but data_offsets span ${end - begin}`);
    spans.push([begin, end, name]);
    tensors.set(name, { dtype: dtype as SafeDType, shape: shape as number[], bytes: file.subarray(dataStart + begin, dataStart + end) });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) fail(`'${spans[i][2]}' overlaps '${spans[i - 1][2]}' in the data section`);
  }
  return { tensors, metadata };
}

/** The values of a stored tensor as f32 (F16, BF16 and F64 are converted). */
export function toFloat32(t: SafeTensor): Float32Array {
  const b = t.bytes;
  const copy = b.slice(); // aligned copy
  const n = b.byteLength / DTYPE_BYTES[t.dtype];
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(copy.buffer, 0, n);
    case 'F64':
      return Float32Array.from(new Float64Array(copy.buffer, 0, n));
    case 'F16': {
      const h = new Uint16Array(copy.buffer, 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]);
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(copy.buffer, 0, n);
      const u = new Uint32Array(n);
      for (let i = 0; i < n; i++) u[i] = h[i] << 16;
      return new Float32Array(u.buffer);
    }
    default:
      throw new SafetensorsError(`cannot read ${t.dtype} as float32`);
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
