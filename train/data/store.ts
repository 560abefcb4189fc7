// Image stores: where a dataset's 3x64x64 uint8 images live, in a form that can be handed to a
// worker thread (a SharedArrayBuffer, or the synthetic generator's seed), and batch assembly.
import { IMAGE_VALUES, u8ToFloat } from './images.js';
import { renderSyntheticFaces } from './synthetic.js';

export type StoreSpec =
  /** Packed NCHW uint8 images in shared memory (a prepared cache, or rendered faces). */
  | { kind: 'shared'; buffer: SharedArrayBuffer | ArrayBuffer; byteOffset: number; count: number }
  /**
   * Synthetic faces rendered on demand: image i is face i of `seed`. With `memo` (count x
   * 12288 bytes) and `rendered` (count flags), each face is drawn once and shared by threads.
   */
  | { kind: 'synthetic'; seed: number; count: number; memo?: SharedArrayBuffer; rendered?: SharedArrayBuffer };

export type BatchFormat = 'float32' | 'uint8';

/** Copies images `indices` of the store into out (NCHW uint8) at image slot `slot0`. */
export function readImages(store: StoreSpec, indices: ArrayLike<number>, out: Uint8Array, slot0 = 0): void {
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!(i >= 0 && i < store.count && Number.isInteger(i))) throw new Error(`image index ${i} out of range 0..${store.count - 1}`);
  }
  if (store.kind === 'synthetic') {
    if (!store.memo || !store.rendered) {
      renderSyntheticFaces(store.seed, indices, out, slot0 * IMAGE_VALUES);
      return;
    }
    const memo = new Uint8Array(store.memo, 0, store.count * IMAGE_VALUES);
    const flags = new Uint8Array(store.rendered, 0, store.count);
    const one = [0];
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      // Two threads may render the same face at once; both write identical bytes.
      if (Atomics.load(flags, i) === 0) {
        one[0] = i;
        renderSyntheticFaces(store.seed, one, memo, i * IMAGE_VALUES);
        Atomics.store(flags, i, 1);
      }
      out.set(memo.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES), (slot0 + k) * IMAGE_VALUES);
    }
    return;
  }
  const src = new Uint8Array(store.buffer, store.byteOffset, store.count * IMAGE_VALUES);
  for (let k = 0; k < indices.length; k++) {
    const s = indices[k] * IMAGE_VALUES;
    out.set(src.subarray(s, s + IMAGE_VALUES), (slot0 + k) * IMAGE_VALUES);
  }
}

/** One batch as a fresh array: NCHW float32 in [-0.5, 0.5], or NCHW uint8. */
export function assembleBatch(store: StoreSpec, indices: ArrayLike<number>, format: BatchFormat): Float32Array | Uint8Array {
  if (format === 'uint8') {
    const out = new Uint8Array(indices.length * IMAGE_VALUES);
    readImages(store, indices, out);
    return out;
  }
  const out = new Float32Array(indices.length * IMAGE_VALUES);
  if (store.kind === 'shared') {
    const src = new Uint8Array(store.buffer, store.byteOffset, store.count * IMAGE_VALUES);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      if (!(i >= 0 && i < store.count && Number.isInteger(i))) throw new Error(`image index ${i} out of range 0..${store.count - 1}`);
      u8ToFloat(src.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES), out, k * IMAGE_VALUES);
    }
    return out;
  }
  const tmp = new Uint8Array(indices.length * IMAGE_VALUES);
  readImages(store, indices, tmp);
  return u8ToFloat(tmp, out);
}

/** Renders faces start..end-1 of a memoised synthetic store into its shared memory. */
export function renderRange(store: StoreSpec, start: number, end: number): void {
  if (store.kind !== 'synthetic' || !store.memo || !store.rendered) throw new Error('renderRange needs a memoised synthetic store');
  const memo = new Uint8Array(store.memo, 0, store.count * IMAGE_VALUES);
  const flags = new Uint8Array(store.rendered, 0, store.count);
  const one = [0];
  for (let i = Math.max(0, start); i < Math.min(end, store.count); i++) {
    if (Atomics.load(flags, i) !== 0) continue;
    one[0] = i;
    renderSyntheticFaces(store.seed, one, memo, i * IMAGE_VALUES);
    Atomics.store(flags, i, 1);
  }
}
