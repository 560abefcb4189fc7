// Builds torch.save-format files byte by byte for the .pt reader's tests: a zip writer (stored
// or deflated entries, every field overridable) and a pickle assembler with the opcodes
// torch.save emits, so valid and hostile files alike come without Python or torch.
import { deflateRawSync } from 'node:zlib';

const enc = new TextEncoder();

export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) {
    c ^= b[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipEntryIn {
  name: string;
  data: Uint8Array;
  /** 0 stored (default), 8 deflate (data is compressed here). */
  method?: 0 | 8;
  /** Overrides of the central directory's fields. */
  crc?: number;
  size?: number;
  csize?: number;
  flags?: number;
}

/** A zip archive as torch.save lays it out (local headers, data, central directory, end record). */
export function zip(entries: ZipEntryIn[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const data = e.method === 8 ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const crc = e.crc ?? crc32(e.data);
    const size = e.size ?? e.data.byteLength;
    const csize = e.csize ?? data.byteLength;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, e.method ?? 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, csize, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const cd = new Uint8Array(46 + name.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(8, e.flags ?? 0, true);
    cv.setUint16(10, e.method ?? 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, csize, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cd.set(name, 46);
    parts.push(local, data);
    central.push(cd);
    offset += local.byteLength + data.byteLength;
  }
  const cdSize = central.reduce((n, c) => n + c.byteLength, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return concat([...parts, ...central, eocd]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** A pickle assembled opcode by opcode. */
export class Pickle {
  private bytes: number[] = [];
  raw(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, ...enc.encode(`${module}\n${name}\n`));
  }
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).raw(0x93);
  }
  str(s: string): this {
    const b = enc.encode(s);
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, b.length, true);
    return this.raw(0x58, ...n, ...b);
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.raw(0x4b, v);
    if (v < -(2 ** 31) || v >= 2 ** 31) return this.big(BigInt(v));
    const n = new Uint8Array(4);
    new DataView(n.buffer).setInt32(0, v, true);
    return this.raw(0x4a, ...n);
  }
  /** LONG1 with an explicit little-endian byte string. */
  long1(bytes: number[]): this {
    return this.raw(0x8a, bytes.length, ...bytes);
  }
  /** An integer of any size (LONG1). */
  big(v: bigint): this {
    const out: number[] = [];
    let x = v;
    do {
      out.push(Number(x & 0xffn));
      x >>= 8n;
    } while (x !== 0n && x !== -1n);
    if ((out[out.length - 1] & 0x80) !== (v < 0n ? 0x80 : 0)) out.push(v < 0n ? 0xff : 0);
    return this.long1(out);
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  persid(): this {
    return this.raw(0x51);
  }
  put(i: number): this {
    return this.raw(0x71, i);
  }
  get(i: number): this {
    return this.raw(0x68, i);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  float(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    return this.raw(0x47, ...b);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  /** An empty OrderedDict on the stack. */
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').emptyTuple().reduce();
  }
  /** `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` on the stack. */
  tensor(t: TensorSpec): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', t.storageType ?? 'FloatStorage').str(t.key).str('cpu');
    if (typeof t.numel === 'bigint') this.big(t.numel);
    else this.int(t.numel);
    this.tuple().persid();
    this.int(t.offset ?? 0);
    this.mark();
    for (const d of t.size) this.int(d);
    this.tuple().mark();
    for (const d of t.stride ?? contiguousStride(t.size)) this.int(d);
    return this.tuple().bool(false).orderedDict().tuple().reduce();
  }
  /** A state_dict: an OrderedDict of named tensors. */
  stateDict(tensors: [string, TensorSpec][]): this {
    this.orderedDict().mark();
    for (const [name, t] of tensors) {
      this.str(name);
      if (t.parameter) parameter(this, t);
      else this.tensor(t);
    }
    return this.setitems();
  }
  done(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
}

export interface TensorSpec {
  key: string;
  storageType?: string;
  /** Elements in the storage. */
  numel: number | bigint;
  offset?: number;
  size: number[];
  stride?: number[];
  parameter?: boolean;
}

export function contiguousStride(size: number[]): number[] {
  const s = new Array<number>(size.length);
  for (let i = size.length - 1, m = 1; i >= 0; i--) {
    s[i] = m;
    m *= size[i];
  }
  return s;
}

/** A parameter: `_rebuild_parameter(_rebuild_tensor_v2(...), True, OrderedDict())`. */
export function parameter(p: Pickle, t: TensorSpec): Pickle {
  p.global('torch._utils', '_rebuild_parameter').mark();
  p.tensor(t);
  return p.bool(true).orderedDict().tuple().reduce();
}

/** A torch.save archive: `<prefix>/data.pkl`, the storages under `<prefix>/data/<key>`, version and byteorder records. */
export function ptArchive(pkl: Uint8Array, storages: Record<string, Uint8Array>, opts: { prefix?: string; byteorder?: string | null; extra?: ZipEntryIn[] } = {}): Uint8Array {
  const prefix = opts.prefix ?? 'archive';
  const entries: ZipEntryIn[] = [{ name: `${prefix}/data.pkl`, data: pkl }];
  if (opts.byteorder !== null) entries.push({ name: `${prefix}/byteorder`, data: enc.encode(opts.byteorder ?? 'little') });
  for (const [k, v] of Object.entries(storages)) entries.push({ name: `${prefix}/data/${k}`, data: v });
  entries.push({ name: `${prefix}/version`, data: enc.encode('3\n') });
  entries.push(...(opts.extra ?? []));
  return zip(entries);
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
