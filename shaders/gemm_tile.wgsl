// The workgroup-memory GEMM tile shared by matmul, conv (forward, input and weight gradients)
// and the nearest-code search: a 16x16 workgroup computes a 64 x 64 block of
//   C[m, n] = sum over k of A(m, k) * B(n, k)
// staging K in slices of 16. Thread (lid.x, lid.y) owns the 4 m of A-slot lid.y and the 4 n of
// B-slot lid.x, and keeps acc[i][j] = C(m of A-slot lane i, n of B-slot lane j). Every element
// accumulates fma(A, B, acc) over k in increasing order, so a kernel moved onto this tile keeps
// its results bit for bit.
//
// A kernel supplies the hooks and calls gemm_tile from its own entry point (workgroup 16x16),
// once per K range it reduces (matmul: per summed batch; the code search: per codebook tile):
//   struct GemmCtx                          the thread's loader state, built once by the kernel
//   gemm_loadA(c, k, s) -> vec4f            A(m, k) for the 4 m of A-slot s, 0 where m is out of
//   gemm_loadB(c, k, s) -> vec4f            range (likewise B); k is always inside [k0, k1)
//   GEMM_A_K_FAST, GEMM_B_K_FAST: bool      which way the 256 threads cover a 16 x 16 slice when
//     they stage it: consecutive threads along k (operands contiguous in k) or along the slots
//     (contiguous in m or n), so that neighbouring threads read neighbouring addresses. A thread
//     stages slot lid.x (along the slots) or lid.y (along k), always the same one, so GemmCtx
//     may hold what its loader precomputed for that slot.
// What a slot's 4 indices are is the hooks' choice (s, s + 16, s + 32, s + 48 for most; four
// adjacent columns for matmul's B), and so is everything around the tile: the index math and
// bounds in the loaders, and the epilogue (bias and activation, partial sums, the argmin).

// @kernel smem
// Slices are stored as vec4s, [k][s] = the 4 indices of slot s: a thread reads its 4 m and its
// 4 n with one workgroup load each (2 per 16 FMAs), and every vec4 is written whole by one thread.
var<workgroup> gemm_As: array<vec4f, 256>;
var<workgroup> gemm_Bs: array<vec4f, 256>;

// acc[i][j] += sum over k in [k0, k1) of A(m_i, k) * B(n_j, k), k ascending. k0 and k1 must be
// uniform over the workgroup (the loop holds barriers).
fn gemm_tile(c: GemmCtx, k0: u32, k1: u32, lid: vec3u, acc: ptr<function, array<vec4f, 4>>) {
  // The slice element this thread stages on each side: offset k of slot s (lid.x and lid.y are
  // the fast and the slow index of local_invocation_index).
  let ka = select(lid.y, lid.x, GEMM_A_K_FAST);
  let sa = select(lid.x, lid.y, GEMM_A_K_FAST);
  let kb = select(lid.y, lid.x, GEMM_B_K_FAST);
  let sb = select(lid.x, lid.y, GEMM_B_K_FAST);
  for (var k = k0; k < k1; k += 16u) {
    // Past k1 the slice is zero padding; the loaders see only k inside [k0, k1).
    let a = gemm_loadA(c, min(k + ka, k1 - 1u), sa);
    let b = gemm_loadB(c, min(k + kb, k1 - 1u), sb);
    gemm_As[ka * 16u + sa] = select(vec4f(0.0), a, k + ka < k1);
    gemm_Bs[kb * 16u + sb] = select(vec4f(0.0), b, k + kb < k1);
    workgroupBarrier();
    for (var q = 0u; q < 16u; q++) {
      let av = gemm_As[q * 16u + lid.y];
      let bv = gemm_Bs[q * 16u + lid.x];
      for (var i = 0u; i < 4u; i++) { (*acc)[i] = fma(vec4f(av[i]), bv, (*acc)[i]); }
    }
    workgroupBarrier();
  }
}
