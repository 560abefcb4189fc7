// PyTorch `.pt` / `.pth` files (torch.save's zip format, PyTorch >= 1.6) read as a state_dict,
// with a restricted unpickler that executes nothing. The pickle (`<prefix>/data.pkl`) is run on
// a tiny stack machine whose only callables are the handful a state_dict needs:
//   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter
//   (and _with_state), torch._tensor._rebuild_from_type_v2 (plain tensors and parameters), and
//   the typed storages torch.FloatStorage, HalfStorage, ... named by persistent ids.
// Any other global (a pickled nn.Module's class, os.system, builtins.eval, numpy scalars, ...)
// is refused with its name the moment the pickle names it, before any tensor data is touched.
// Tensors stay references (storage, offset, size, stride) until the whole pickle is parsed and
// every reference is checked against its storage; only then is anything copied.
// Refused as well: legacy (pre-1.6 or tar) files, big-endian data, compressed or encrypted zip
// entries (torch.save stores entries uncompressed, so a deflate entry is never decompressed:
// no zip bomb), truncated archives, storages whose size disagrees with their zip entry, and
// tensors that reach past their storage.
// Platform-free (bytes in, tensors out; runs in Node and in web pages).
import type { SafeDType, SafeTensor } from './safetensors.js';

export class PtError extends Error {
  override name = 'PtError';
}

/** A state_dict read from a .pt file. */
export interface PtStateDict {
  /** Contiguous little-endian tensors: floats as F32 (F16, BF16 and F64 converted), integers as stored. */
  tensors: Map<string, SafeTensor>;
  /** The key of a whole training checkpoint the state_dict came from (null: the file is the state_dict). */
  key: string | null;
  /** Conversions made on the way (float16 -> float32, ...), for the caller to show. */
  warnings: string[];
}

/** Keys of a training-checkpoint dict that hold the model's state_dict, in the order tried. */
export const STATE_DICT_KEYS = ['state_dict', 'model_state_dict', 'model', 'model_state', 'net', 'network', 'module', 'ema', 'params'];

/** Largest pickle read (a state_dict's pickle is a few kB per tensor). */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
const MAX_ENTRIES = 1_000_000;
const MAX_RANK = 16;

interface StorageType {
  dtype: string;
  bytes: number;
  safe: SafeDType | null;
}

/** torch.<X>Storage classes a persistent id may name. */
const STORAGE_TYPES: Record<string, StorageType> = {
  FloatStorage: { dtype: 'float32', bytes: 4, safe: 'F32' },
  HalfStorage: { dtype: 'float16', bytes: 2, safe: 'F16' },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2, safe: 'BF16' },
  DoubleStorage: { dtype: 'float64', bytes: 8, safe: 'F64' },
  LongStorage: { dtype: 'int64', bytes: 8, safe: 'I64' },
  IntStorage: { dtype: 'int32', bytes: 4, safe: 'I32' },
  ByteStorage: { dtype: 'uint8', bytes: 1, safe: 'U8' },
  ShortStorage: { dtype: 'int16', bytes: 2, safe: null },
  CharStorage: { dtype: 'int8', bytes: 1, safe: null },
  BoolStorage: { dtype: 'bool', bytes: 1, safe: null },
};

// ---- zip (stored entries only)

interface ZipEntry {
  name: string;
  /** The entry's bytes (a view into the file). */
  data: Uint8Array;
  crc: number;
}

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
function u64(b: Uint8Array, o: number, fail: (m: string) => never): number {
  const hi = u32(b, o + 4);
  if (hi >= 0x200000) fail(`a 64-bit zip field (${hi} * 2^32) is beyond any real file`);
  return hi * 0x100000000 + u32(b, o);
}

/** Central-directory entries of a zip archive, each bounds-checked against the file. */
function readZip(file: Uint8Array, fail: (m: string) => never): Map<string, ZipEntry> {
  const n = file.byteLength;
  // End of central directory: 22 bytes plus a comment of up to 65535 bytes, at the very end.
  let eocd = -1;
  for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--) {
    if (file[i] === 0x50 && file[i + 1] === 0x4b && file[i + 2] === 0x05 && file[i + 3] === 0x06) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('truncated zip archive: no end-of-central-directory record (an interrupted download or copy?)');
  let count = u16(file, eocd + 10);
  let cdSize = u32(file, eocd + 12);
  let cdOffset = u32(file, eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: a locator 20 bytes before the end record points at the zip64 end record
    const loc = eocd - 20;
    if (loc < 0 || u32(file, loc) !== 0x07064b50) fail('zip64 archive without its zip64 locator');
    const z = u64(file, loc + 8, fail);
    if (z + 56 > n || u32(file, z) !== 0x06064b50) fail('zip64 end record out of the file (truncated?)');
    count = u64(file, z + 32, fail);
    cdSize = u64(file, z + 40, fail);
    cdOffset = u64(file, z + 48, fail);
  }
  if (count > MAX_ENTRIES) fail(`${count} zip entries (more than ${MAX_ENTRIES})`);
  if (cdOffset + cdSize > n) fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) reaches past the end of the file (${n} bytes; truncated?)`);
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  const end = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (p + 46 > end || u32(file, p) !== 0x02014b50) fail(`zip central directory entry ${i} is malformed`);
    const flags = u16(file, p + 8);
    const method = u16(file, p + 10);
    const crc = u32(file, p + 16);
    let csize = u32(file, p + 20);
    let usize = u32(file, p + 24);
    const nameLen = u16(file, p + 28);
    const extraLen = u16(file, p + 30);
    const commentLen = u16(file, p + 32);
    let local = u32(file, p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > end) fail(`zip central directory entry ${i} runs past the directory`);
    const name = new TextDecoder('utf-8', { fatal: false }).decode(file.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: the 64-bit values of whichever fields hold 0xffffffff, in this order
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = u16(file, x);
      const size = u16(file, x + 2);
      if (x + 4 + size > xEnd) fail(`'${name}': zip extra field runs past its entry`);
      if (id === 0x0001) {
        let q = x + 4;
        const take = (): number => {
          if (q + 8 > x + 4 + size) fail(`'${name}': zip64 extra field too short`);
          const v = u64(file, q, fail);
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take();
        if (csize === 0xffffffff) csize = take();
        if (local === 0xffffffff) local = take();
      }
      x += 4 + size;
    }
    p += 46 + nameLen + extraLen + commentLen;
    if (flags & 1) fail(`'${name}' is encrypted`);
    if (method !== 0) {
      fail(`'${name}' is compressed (zip method ${method}); torch.save writes uncompressed archives, and compressed entries are refused unread (a re-zipped .pt file? unzip it and save it with torch.save again)`);
    }
    if (csize !== usize) fail(`'${name}': stored entry with compressed size ${csize} != size ${usize}`);
    if (local + 30 > n || u32(file, local) !== 0x04034b50) fail(`'${name}': local header at ${local} is missing (truncated?)`);
    const dataStart = local + 30 + u16(file, local + 26) + u16(file, local + 28);
    if (dataStart + usize > n) fail(`'${name}': data [${dataStart}, ${dataStart + usize}) reaches past the end of the file (${n} bytes; truncated?)`);
    if (entries.has(name)) fail(`zip entry '${name}' appears twice`);
    entries.set(name, { name, data: file.subarray(dataStart, dataStart + usize), crc });
  }
  return entries;
}

let crcTable: Uint32Array | null = null;
function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function checkCrc(e: ZipEntry, fail: (m: string) => never): void {
  // torch can be told not to compute checksums (then 0 is stored): 0 is not checked
  if (e.crc !== 0 && crc32(e.data) !== e.crc) fail(`'${e.name}': CRC-32 mismatch (the file is corrupt)`);
}

// ---- the pickle machine

class Global {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}
class Tuple {
  constructor(readonly items: unknown[]) {}
}
class Dict {
  readonly map = new Map<string | number | boolean | null, unknown>();
}
class Storage {
  constructor(
    readonly type: StorageType,
    readonly key: string,
    readonly numel: number,
    readonly entry: ZipEntry,
  ) {}
}
class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}
const MARK = Symbol('mark');

/** The globals a state_dict's pickle may name; everything else is refused on sight. */
const ALLOWED_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Tensor',
  'torch._tensor.Tensor',
  'torch.nn.parameter.Parameter',
  ...Object.keys(STORAGE_TYPES).map((s) => `torch.${s}`),
]);

function refusal(g: string): string {
  let why: string;
  if (/^__torch__\./.test(g)) why = 'a TorchScript archive (torch.jit.save): save model.state_dict() with torch.save instead';
  else if (/^torch\.nn\.modules\./.test(g) || /^(__main__|model|models?\.)/.test(g)) why = 'a pickled nn.Module (torch.save(model)): save model.state_dict() instead';
  else if (/^(os|posix|nt|subprocess|builtins|__builtin__|sys|shutil|socket|importlib|runpy|pty|webbrowser|code|pickle|marshal)\./.test(g)) why = 'a callable that would run code on load: this reader executes nothing';
  else if (/^numpy\./.test(g)) why = 'a numpy object: only torch tensors are read (save plain Python numbers or tensors instead)';
  else if (/\.[A-Z][A-Za-z0-9_]*$/.test(g)) why = 'a pickled object (a whole nn.Module or another class?): save model.state_dict() instead';
  else why = 'any other callable is refused: this reader executes nothing';
  return `refused global '${g}': ${why}`;
}

const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** Runs the pickle; every storage it names must be a zip entry of the matching size. */
function unpickle(pkl: Uint8Array, storageEntry: (key: string) => ZipEntry | undefined, fail: (m: string) => never): unknown {
  const view = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const storages = new Map<string, Storage>();
  let p = 0;
  const need = (k: number): number => {
    if (k < 0 || p + k > pkl.byteLength) fail(`pickle truncated at byte ${p} (needs ${k} more)`);
    const at = p;
    p += k;
    return at;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail(`pickle stack underflow at byte ${p}`);
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(`pickle: no mark at byte ${p}`);
    return stack.splice(m);
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`pickle stack empty at byte ${p}`);
    return stack[stack.length - 1];
  };
  const str = (n: number): string => {
    const at = need(n);
    try {
      return utf8.decode(pkl.subarray(at, at + n));
    } catch {
      return fail(`pickle string at byte ${at} is not UTF-8`);
    }
  };
  const latin1 = (n: number): string => {
    const at = need(n);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(pkl[at + i]);
    return s;
  };
  const global = (module: string, name: string): Global => {
    const g = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(g)) fail(refusal(g));
    return new Global(module, name);
  };
  const setItem = (d: unknown, k: unknown, v: unknown) => {
    if (!(d instanceof Dict)) fail(`pickle sets an item on a ${kind(d)} at byte ${p}`);
    if (!(k === null || ['string', 'number', 'boolean'].includes(typeof k))) fail(`pickle: a dict key is a ${kind(k)} (only strings and numbers are read)`);
    d.map.set(k as string | number | boolean | null, v);
  };
  const long = (n: number): number => {
    const at = need(n);
    if (n === 0) return 0;
    if (n > 8) fail(`integer of ${n} bytes at byte ${at} is too large`);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(pkl[at + i]);
    if (pkl[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail(`integer ${v} at byte ${at} is too large`);
    return Number(v);
  };

  const persistentLoad = (pid: unknown): Storage => {
    if (!(pid instanceof Tuple)) fail(`persistent id is a ${kind(pid)}, not a storage tuple`);
    const [tag, type, key, location, numel] = pid.items;
    if (tag !== 'storage' || pid.items.length !== 5) fail(`persistent id ${describe(pid)} is not ('storage', type, key, location, numel)`);
    if (!(type instanceof Global) || !(type.name in STORAGE_TYPES) || type.module !== 'torch') fail(`storage type ${describe(type)} is not a torch typed storage`);
    if (typeof key !== 'string' || typeof location !== 'string' || !int(numel) || numel < 0) fail(`storage ${describe(pid)} is malformed`);
    const st = STORAGE_TYPES[type.name];
    const seen = storages.get(key);
    if (seen) {
      if (seen.type !== st) fail(`storage '${key}' is read as two types`);
      return seen;
    }
    const entry = storageEntry(key);
    if (!entry) fail(`storage '${key}' has no data/${key} entry in the archive`);
    if (entry.data.byteLength !== numel * st.bytes) fail(`storage '${key}': ${numel} ${st.dtype} values need ${numel * st.bytes} bytes, its entry has ${entry.data.byteLength}`);
    const s = new Storage(st, key, numel, entry);
    storages.set(key, s);
    return s;
  };

  const rebuildTensor = (args: unknown[]): TensorRef => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage)) fail(`tensor rebuild: storage is a ${kind(storage)}`);
    if (!int(offset) || offset < 0) fail(`tensor rebuild: storage offset ${describe(offset)}`);
    if (!(size instanceof Tuple) || !(stride instanceof Tuple)) fail('tensor rebuild: size and stride must be tuples');
    const sz = size.items;
    const sd = stride.items;
    if (sz.length !== sd.length || sz.length > MAX_RANK) fail(`tensor rebuild: size ${describe(size)} and stride ${describe(stride)} do not match`);
    if (!sz.every((d) => int(d) && d >= 0) || !sd.every((d) => int(d) && d >= 0)) fail(`tensor rebuild: size ${describe(size)} / stride ${describe(stride)} must be non-negative integers`);
    const dims = sz as number[];
    const strides = sd as number[];
    // the last element's index must lie inside the storage (a size of 0 holds nothing)
    if (!dims.includes(0)) {
      let last = offset;
      for (let i = 0; i < dims.length; i++) {
        last += (dims[i] - 1) * strides[i];
        if (last >= storage.numel) fail(`tensor of size [${dims.join(', ')}], stride [${strides.join(', ')}], offset ${offset} reaches past its storage '${storage.key}' of ${storage.numel} elements`);
      }
      if (last >= storage.numel) fail(`tensor at offset ${offset} lies outside its storage '${storage.key}' of ${storage.numel} elements`);
    }
    return new TensorRef(storage, offset, dims, strides);
  };

  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof Global)) fail(`pickle calls a ${kind(fn)}: only known globals are callable`);
    if (!(args instanceof Tuple)) fail(`pickle calls ${fn.full} with a ${kind(args)}`);
    const a = args.items;
    switch (fn.full) {
      case 'collections.OrderedDict':
        if (a.length !== 0) fail('OrderedDict(...) with arguments');
        return new Dict();
      case 'torch._utils._rebuild_tensor_v2':
        return rebuildTensor(a);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        if (!(a[0] instanceof TensorRef)) fail(`${fn.full}: data is a ${kind(a[0])}`);
        return a[0];
      case 'torch._tensor._rebuild_from_type_v2': {
        const [inner, type, innerArgs] = a;
        if (!(type instanceof Global) || !['torch.Tensor', 'torch._tensor.Tensor', 'torch.nn.parameter.Parameter'].includes(type.full)) fail(`tensor of type ${describe(type)}`);
        const t = call(inner, innerArgs);
        if (!(t instanceof TensorRef)) fail(`${fn.full} did not rebuild a tensor`);
        return t;
      }
      default:
        return fail(`${fn.full} cannot be called`);
    }
  };

  for (;;) {
    const op = pkl[need(1)];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        break;
      case 0x95: // FRAME
        need(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`pickle ends with ${stack.length} values on its stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Dict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new Tuple([]));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(pkl[need(1)]);
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(need(2), true));
        break;
      case 0x8a: // LONG1
        stack.push(long(pkl[need(1)]));
        break;
      case 0x8b: // LONG4
        stack.push(long(view.getInt32(need(4), true)));
        break;
      case 0x47: // BINFLOAT (big-endian)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(str(view.getUint32(need(4), true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(pkl[need(1)]));
        break;
      case 0x8d: {
        // BINUNICODE8
        const at = need(8);
        const hi = view.getUint32(at + 4, true);
        if (hi) fail(`string of more than 4 GiB at byte ${at}`);
        stack.push(str(view.getUint32(at, true)));
        break;
      }
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(latin1(pkl[need(1)]));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1(view.getInt32(need(4), true)));
        break;
      case 0x43: {
        // SHORT_BINBYTES
        const n = pkl[need(1)];
        const at = need(n);
        stack.push(pkl.subarray(at, at + n));
        break;
      }
      case 0x42: {
        // BINBYTES
        const n = view.getUint32(need(4), true);
        const at = need(n);
        stack.push(pkl.subarray(at, at + n));
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const readLine = (): string => {
          const at = p;
          const nl = pkl.indexOf(0x0a, at);
          if (nl < 0 || nl - at > 256) fail(`pickle GLOBAL at byte ${at} is malformed`);
          p = nl + 1;
          return latin1Of(pkl.subarray(at, nl));
        };
        const module = readLine();
        stack.push(global(module, readLine()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('pickle STACK_GLOBAL without two strings');
        stack.push(global(module, name));
        break;
      }
      case 0x71: // BINPUT
        memo.set(pkl[need(1)], top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(view.getUint32(need(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? pkl[need(1)] : view.getUint32(need(4), true);
        if (!memo.has(k)) fail(`pickle reads memo ${k}, never stored`);
        stack.push(memo.get(k));
        break;
      }
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x74: // TUPLE
        stack.push(new Tuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new Tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new Tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new Tuple([pop(), b, c]));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) fail('pickle DICT with an odd number of items');
        const d = new Dict();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail(`pickle appends to a ${kind(l)}`);
        l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail(`pickle appends to a ${kind(l)}`);
        for (const v of items) l.push(v);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) fail('pickle SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      case 0x62: {
        // BUILD: only a state_dict's `_metadata` attribute (a dict) on an OrderedDict
        const state = pop();
        const obj = top();
        if (!(obj instanceof Dict) || !(state instanceof Dict || state === null)) fail(`pickle BUILD on a ${kind(obj)} with a ${kind(state)}`);
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1} (a state_dict's pickle never needs it)`);
    }
  }
}

function latin1Of(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

function kind(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Dict) return 'dict';
  if (v instanceof Tuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof TensorRef) return 'tensor';
  if (v instanceof Storage) return 'storage';
  if (v instanceof Global) return `global ${v.full}`;
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}

function describe(v: unknown): string {
  if (v instanceof Tuple) return `(${v.items.map(describe).join(', ')})`;
  if (v instanceof Global) return v.full;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return kind(v);
}

// ---- from references to tensors

/** A dict whose keys are strings and whose values are all tensors (and at least one). */
function asStateDict(v: unknown): Map<string, TensorRef> | null {
  if (!(v instanceof Dict) || v.map.size === 0) return null;
  const out = new Map<string, TensorRef>();
  for (const [k, t] of v.map) {
    if (typeof k !== 'string' || !(t instanceof TensorRef)) return null;
    out.set(k, t);
  }
  return out;
}

/** The tensor's elements in row-major order, as little-endian bytes of its storage's type. */
function contiguous(t: TensorRef): Uint8Array {
  const w = t.storage.type.bytes;
  const src = t.storage.entry.data;
  const n = t.size.reduce((a, b) => a * b, 1);
  let isContiguous = true;
  for (let i = t.size.length - 1, expect = 1; i >= 0; i--) {
    if (t.size[i] !== 1 && t.stride[i] !== expect) isContiguous = false;
    expect *= t.size[i];
  }
  if (isContiguous) return src.subarray(t.offset * w, (t.offset + n) * w);
  const out = new Uint8Array(n * w);
  const idx = new Array<number>(t.size.length).fill(0);
  let at = t.offset;
  for (let e = 0; e < n; e++) {
    out.set(src.subarray(at * w, at * w + w), e * w);
    // odometer over the multi-index, last dimension fastest
    for (let d = t.size.length - 1; d >= 0; d--) {
      idx[d]++;
      at += t.stride[d];
      if (idx[d] < t.size[d]) break;
      at -= idx[d] * t.stride[d];
      idx[d] = 0;
    }
  }
  return out;
}

function toF32Bytes(b: Uint8Array, type: StorageType): Uint8Array {
  const copy = b.slice();
  const n = b.byteLength / type.bytes;
  const out = new Float32Array(n);
  if (type.dtype === 'float64') out.set(new Float64Array(copy.buffer, 0, n));
  else if (type.dtype === 'bfloat16') {
    const h = new Uint16Array(copy.buffer, 0, n);
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = h[i] << 16;
  } else {
    const h = new Uint16Array(copy.buffer, 0, n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]);
  }
  return new Uint8Array(out.buffer);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** 'PK\x03\x04' (a zip: torch.save since 1.6) or 'PK\x05\x06' (an empty zip). */
export function looksLikePt(bytes: Uint8Array | ArrayBuffer): boolean {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (b.byteLength >= 2 && b[0] === 0x50 && b[1] === 0x4b) return true;
  // a bare pickle (legacy torch.save) starts with PROTO 2; a tar has 'ustar' at 257
  if (b.byteLength >= 2 && b[0] === 0x80 && b[1] <= 5) return true;
  return b.byteLength > 262 && latin1Of(b.subarray(257, 262)) === 'ustar';
}

/**
 * Reads a `torch.save` file's state_dict: the file's own dict of tensors, or the model's from a
 * whole training checkpoint (the first of STATE_DICT_KEYS that holds one; `key` names it).
 * `source` names the data in errors. Refusals are PtErrors naming the problem.
 */
export function decodePt(bytes: Uint8Array | ArrayBuffer, source = '.pt data'): PtStateDict {
  // a plain view: subarray/slice of a Node Buffer would not copy
  const file = bytes instanceof Uint8Array ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new Uint8Array(bytes);
  const fail = (msg: string): never => {
    throw new PtError(`${source}: ${msg}`);
  };
  if (file.byteLength >= 2 && file[0] === 0x80) {
    fail('legacy torch.save format (PyTorch < 1.6, or _use_new_zipfile_serialization=False): load and re-save it with a current torch.save');
  }
  if (file.byteLength > 262 && latin1Of(file.subarray(257, 262)) === 'ustar') fail('legacy tar format of torch.save (PyTorch < 0.4): load and re-save it with a current torch.save');
  if (file.byteLength < 4 || file[0] !== 0x50 || file[1] !== 0x4b) fail('not a torch.save zip archive (no PK signature)');
  const entries = readZip(file, fail);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    const jit = [...entries.keys()].some((n) => /\/constants\.pkl$/.test(n));
    fail(pkls.length ? `${pkls.length} data.pkl records` : jit ? 'a TorchScript archive without data.pkl' : 'no <name>/data.pkl record: not a torch.save archive');
  }
  const prefix = pkls[0].slice(0, -'data.pkl'.length);
  const order = entries.get(`${prefix}byteorder`);
  if (order) {
    const o = latin1Of(order.data).trim();
    if (o !== 'little') fail(`byte order '${o}': only little-endian files are read (save it on a little-endian machine)`);
  }
  const pkl = entries.get(pkls[0])!;
  if (pkl.data.byteLength > MAX_PICKLE_BYTES) fail(`data.pkl is ${pkl.data.byteLength} bytes (more than ${MAX_PICKLE_BYTES})`);
  checkCrc(pkl, fail);
  const root = unpickle(pkl.data, (key) => (/^[A-Za-z0-9_.-]+$/.test(key) ? entries.get(`${prefix}data/${key}`) : undefined), fail);

  let key: string | null = null;
  let sd = asStateDict(root);
  if (!sd) {
    if (!(root instanceof Dict)) return fail(`holds a ${kind(root)}, not a state_dict`);
    for (const k of STATE_DICT_KEYS) {
      sd = asStateDict(root.map.get(k));
      if (sd) {
        key = k;
        break;
      }
    }
    if (!sd) {
      const keys = [...root.map].map(([k, v]) => `${describe(k)}: ${kind(v)}`).join(', ');
      fail(`no model state_dict in it: neither the file nor any of its keys ${STATE_DICT_KEYS.map((k) => `'${k}'`).join(', ')} is a dict of tensors (it holds {${keys}})`);
    }
  }

  // every check before the first copy
  const checked = new Set<ZipEntry>();
  for (const [name, t] of sd!) {
    const type = t.storage.type;
    if (!type.safe) fail(`'${name}' is ${type.dtype}: only float and int32/int64/uint8 tensors are read`);
    if (!checked.has(t.storage.entry)) checkCrc(t.storage.entry, fail);
    checked.add(t.storage.entry);
  }
  const tensors = new Map<string, SafeTensor>();
  const converted = new Map<string, string[]>();
  for (const [name, t] of sd!) {
    const type = t.storage.type;
    let bytes = contiguous(t);
    let dtype = type.safe!;
    if (type.dtype === 'float16' || type.dtype === 'bfloat16' || type.dtype === 'float64') {
      bytes = toF32Bytes(bytes, type);
      dtype = 'F32';
      converted.set(type.dtype, [...(converted.get(type.dtype) ?? []), name]);
    }
    tensors.set(name, { dtype, shape: [...t.size], bytes });
  }
  const warnings = [...converted].map(
    ([dtype, names]) => `${source}: ${names.length} ${dtype} tensor${names.length > 1 ? 's' : ''} converted to float32 (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''})`,
  );
  return { tensors, key, warnings };
}
