// Float64 CPU reference for matmul (engine/matmul.ts): plain triple loops with NumPy batch
// broadcasting, written independently of the engine's tiling.
import { size } from './elementwise.js';

export interface RefMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Float32Array;
  relu?: boolean;
}

/** float64 reference with numpy batch broadcasting; a, b row-major. */
export function refMatmul(a: Float32Array, as: number[], b: Float32Array, bs: number[], o: RefMatmulOptions = {}): { data: Float64Array; shape: number[]; K: number } {
  const [ar, ac] = as.slice(-2);
  const [br, bc] = bs.slice(-2);
  const [M, K] = o.transA ? [ac, ar] : [ar, ac];
  const N = o.transB ? br : bc;
  const ab = as.slice(0, -2);
  const bb = bs.slice(0, -2);
  const nb = Math.max(ab.length, bb.length);
  const pa = [...Array(nb - ab.length).fill(1), ...ab];
  const pb = [...Array(nb - bb.length).fill(1), ...bb];
  const batch = pa.map((x, i) => Math.max(x, pb[i]));
  const T = size(batch);
  const out = new Float64Array(T * M * N);
  for (let z = 0; z < T; z++) {
    // multi-index of z, then each operand's flat batch index (size-1 dims broadcast)
    let rem = z;
    let za = 0;
    let zb = 0;
    let sa = 1;
    let sb = 1;
    for (let d = nb - 1; d >= 0; d--) {
      const idx = rem % batch[d];
      rem = Math.floor(rem / batch[d]);
      za += (pa[d] === 1 ? 0 : idx) * sa;
      zb += (pb[d] === 1 ? 0 : idx) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    const A = (i: number, k: number) => a[za * M * K + (o.transA ? k * M + i : i * K + k)];
    const B = (k: number, j: number) => b[zb * K * N + (o.transB ? j * K + k : k * N + j)];
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = o.bias ? o.bias[j] : 0;
        for (let k = 0; k < K; k++) s += A(i, k) * B(k, j);
        out[(z * M + i) * N + j] = o.relu ? Math.max(s, 0) : s;
      }
    }
  }
  return { data: out, shape: [...batch, M, N], K };
}
