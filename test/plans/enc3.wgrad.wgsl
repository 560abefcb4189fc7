enable subgroups;
// Convolutions as implicit GEMMs (engine/conv.ts builds the geometry and the unrolled parts).
//
// Every pass of conv2d and convTranspose2d is one of two GEMM shapes:
//   "conv":  out[b, row, o(q)] = sum over (kin, ty, tx) of Wp[row, kin, ty, tx] * X[b, kin, i(q, ty, tx)]
//            with window coordinates iy = qy*SY + DIR*ty + OFFY, ix = qx*SX + DIR*tx + OFFX and
//            output coordinates oy = qy*OSY + OPY, ox = qx*OSX + OPX. Conv forward and the
//            transposed conv's input gradient use DIR = +1 (SY, SX = stride); conv's input
//            gradient and the transposed conv's forward run once per output phase of the stride
//            with DIR = -1 and SY = SX = 1, so no tap that cannot contribute is ever visited.
//   "wgrad": P[s, row, (kin, ty, tx)] = sum over positions q in chunk s of
//            A[b, row, qy, qx] * X[b, kin, qy*SY + ty + OFFY, qx*SX + tx + OFFX]; a second
//            kernel (wsum) adds the chunks in a fixed order, so results are deterministic.
// Wp is the weight repacked by the pack kernel: rows padded, taps of a row in groups of four
// (or, when a kernel row has one tap, four input channels per vec4).
//
// Two schedules. "reg" (CPU Vulkan such as lavapipe): a workgroup is one subgroup of 8 lanes, no
// workgroup memory, no barriers. llvmpipe runs the 8 lanes as one SIMD vector; arithmetic is
// vectorised but (Mesa 25.0) every storage load becomes a per-lane, bounds-checked scalar load
// per component (~10 instructions each, even at a uniform address), and every fma() is a
// separate vector multiply and add (perf disassembly of convw_rows: 576 vmulps and 576 vaddps
// for its 576 fma() per iteration, no vfmadd), so loads per FMA decide the speed:
//   * weights (conv) or A rows (wgrad): lane l loads rows l, l + 8, ... of the subgroup's R and
//     subgroupBroadcast hands each value to all 8 lanes (one load per subgroup, not per lane);
//   * each lane owns PJ adjacent output positions (conv: 16 for 3x3/4x4 kernels on a CPU, else
//     8 or 4) or CPL column groups (wgrad: 2, or 4 for 1x1 kernels), and loads the input window
//     they share once, aligned vec4s where whole; a weight gradient with stride-1 kernel rows
//     (convw_rows) instead gives each lane all kernel rows of one input channel and walks down
//     the output rows, loading one new input row per iteration;
//   * weight gradients may bind A4 and X4 as rgba32float textures (engine/conv.ts emits
//     A4_at(i) = textureLoad in place of A4[i]): there a texel load is one gather per
//     component for all 8 lanes, so operands loaded many times per vec4 are copied into one;
//   * each accumulator is assigned once per loop iteration (every assignment inside a loop is a
//     load, a masked blend and a store there).
// "smem" (discrete GPUs): the 64x64 workgroup-memory GEMM tile of shaders/gemm_tile.wgsl,
// shared with matmul and the code search; conv_smem and convw_smem supply its loaders (the
// index math and bounds above) and their epilogues.


// Weight gradient for stride-1 kernel rows (SY = 1, TY >= 2, one tap group): each lane owns one
// input channel kin and all TY kernel rows of it (R rows of A x 8 lanes x TY column groups), and
// the iterations walk down the output rows of a position column (b, four qx) with qy innermost.
// The input rows of consecutive iterations then overlap in TY - 1 rows: an iteration loads one
// new input row and shifts the others down a ring of loop-carried values (llvmpipe's per-lane
// loads cost far more than the shifts). Partial sums go to P[chunk] as convw_reg's do.
struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, NGI: u32,
  TY: u32, NCG: u32, SY: u32, CHUNK: u32,
  OFFY: i32, OFFX: i32, KITERS: u32, _pad: u32,
}
@group(0) @binding(0) var A4: texture_storage_2d<rgba32float, read>;
fn A4_at(i: u32) -> vec4f { return textureLoad(A4, vec2u(i & 1023u, i >> 10u)); }
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> X4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> P: array<vec4f>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let m0 = wg.y * 16u;
  // Rows of A this lane loads for the subgroup (clamped: rows past ROWS are never stored).
  let ar_0 = min(m0 + lane + 0u, p.ROWS - 1u);
  let ar_1 = min(m0 + lane + 8u, p.ROWS - 1u);
  // This lane's input channel (clamped: channels past KIN are never stored).
  let kinr = wg.x * 8u + lane;
  let kin = min(kinr, p.KIN - 1u);
  // Iterations k0..k1 of this chunk; iteration k covers (b, qg, qy) with k = (b NGI + qg) QH + qy.
  let k0 = wg.z * p.CHUNK;
  let k1 = min(k0 + p.CHUNK, p.KITERS);
  var qy = k0 % p.QH;
  var qg = (k0 / p.QH) % p.NGI;
  var b = k0 / (p.QH * p.NGI);
  var ring0_v1 = vec4f(0.0);
  var ring0_s0 = f32(0.0);
  var ring0_s5 = f32(0.0);
  var ring1_v1 = vec4f(0.0);
  var ring1_s0 = f32(0.0);
  var ring1_s5 = f32(0.0);
  var acc_0_0 = vec3f(0.0);
  var acc_0_1 = vec3f(0.0);
  var acc_0_2 = vec3f(0.0);
  var acc_1_0 = vec3f(0.0);
  var acc_1_1 = vec3f(0.0);
  var acc_1_2 = vec3f(0.0);
  var acc_2_0 = vec3f(0.0);
  var acc_2_1 = vec3f(0.0);
  var acc_2_2 = vec3f(0.0);
  var acc_3_0 = vec3f(0.0);
  var acc_3_1 = vec3f(0.0);
  var acc_3_2 = vec3f(0.0);
  var acc_4_0 = vec3f(0.0);
  var acc_4_1 = vec3f(0.0);
  var acc_4_2 = vec3f(0.0);
  var acc_5_0 = vec3f(0.0);
  var acc_5_1 = vec3f(0.0);
  var acc_5_2 = vec3f(0.0);
  var acc_6_0 = vec3f(0.0);
  var acc_6_1 = vec3f(0.0);
  var acc_6_2 = vec3f(0.0);
  var acc_7_0 = vec3f(0.0);
  var acc_7_1 = vec3f(0.0);
  var acc_7_2 = vec3f(0.0);
  var acc_8_0 = vec3f(0.0);
  var acc_8_1 = vec3f(0.0);
  var acc_8_2 = vec3f(0.0);
  var acc_9_0 = vec3f(0.0);
  var acc_9_1 = vec3f(0.0);
  var acc_9_2 = vec3f(0.0);
  var acc_10_0 = vec3f(0.0);
  var acc_10_1 = vec3f(0.0);
  var acc_10_2 = vec3f(0.0);
  var acc_11_0 = vec3f(0.0);
  var acc_11_1 = vec3f(0.0);
  var acc_11_2 = vec3f(0.0);
  var acc_12_0 = vec3f(0.0);
  var acc_12_1 = vec3f(0.0);
  var acc_12_2 = vec3f(0.0);
  var acc_13_0 = vec3f(0.0);
  var acc_13_1 = vec3f(0.0);
  var acc_13_2 = vec3f(0.0);
  var acc_14_0 = vec3f(0.0);
  var acc_14_1 = vec3f(0.0);
  var acc_14_2 = vec3f(0.0);
  var acc_15_0 = vec3f(0.0);
  var acc_15_1 = vec3f(0.0);
  var acc_15_2 = vec3f(0.0);
  for (var kk = k0; kk < k1; kk++) {
    let qx0 = qg * 4u;
    let abase = (b * p.ROWS) * p.QH + qy;
    let chan = (b * p.KIN + kin) * p.IH;
    let xb = i32(qx0 * 1u) + p.OFFX;
    // A new column (or the chunk's first iteration): load the ring's TY - 1 rows afresh.
    if (kk == k0 || qy == 0u) {
      let iy_ring0 = i32(qy + 0u) + p.OFFY;
      let rok_ring0 = iy_ring0 >= 0 && iy_ring0 < i32(p.IH);
      let xrow_ring0 = (chan + u32(clamp(iy_ring0, 0, i32(p.IH) - 1))) * p.IW;
      ring0_v1 = select(vec4f(0.0), X4[(xrow_ring0 + select(0u, u32(xb + 1), xb + 1 >= 0 && xb + 1 < i32(p.IW))) / 4u], rok_ring0 && xb + 1 >= 0 && xb + 1 < i32(p.IW));
      ring0_s0 = select(0.0, X[xrow_ring0 + u32(clamp(xb + 0, 0, i32(p.IW) - 1))], rok_ring0 && xb + 0 >= 0 && xb + 0 < i32(p.IW));
      ring0_s5 = select(0.0, X[xrow_ring0 + u32(clamp(xb + 5, 0, i32(p.IW) - 1))], rok_ring0 && xb + 5 >= 0 && xb + 5 < i32(p.IW));
      let iy_ring1 = i32(qy + 1u) + p.OFFY;
      let rok_ring1 = iy_ring1 >= 0 && iy_ring1 < i32(p.IH);
      let xrow_ring1 = (chan + u32(clamp(iy_ring1, 0, i32(p.IH) - 1))) * p.IW;
      ring1_v1 = select(vec4f(0.0), X4[(xrow_ring1 + select(0u, u32(xb + 1), xb + 1 >= 0 && xb + 1 < i32(p.IW))) / 4u], rok_ring1 && xb + 1 >= 0 && xb + 1 < i32(p.IW));
      ring1_s0 = select(0.0, X[xrow_ring1 + u32(clamp(xb + 0, 0, i32(p.IW) - 1))], rok_ring1 && xb + 0 >= 0 && xb + 0 < i32(p.IW));
      ring1_s5 = select(0.0, X[xrow_ring1 + u32(clamp(xb + 5, 0, i32(p.IW) - 1))], rok_ring1 && xb + 5 >= 0 && xb + 5 < i32(p.IW));
    }
    let iy_xn = i32(qy + 2u) + p.OFFY;
    let rok_xn = iy_xn >= 0 && iy_xn < i32(p.IH);
    let xrow_xn = (chan + u32(clamp(iy_xn, 0, i32(p.IH) - 1))) * p.IW;
    let xn_v1 = select(vec4f(0.0), X4[(xrow_xn + select(0u, u32(xb + 1), xb + 1 >= 0 && xb + 1 < i32(p.IW))) / 4u], rok_xn && xb + 1 >= 0 && xb + 1 < i32(p.IW));
    let xn_s0 = select(0.0, X[xrow_xn + u32(clamp(xb + 0, 0, i32(p.IW) - 1))], rok_xn && xb + 0 >= 0 && xb + 0 < i32(p.IW));
    let xn_s5 = select(0.0, X[xrow_xn + u32(clamp(xb + 5, 0, i32(p.IW) - 1))], rok_xn && xb + 5 >= 0 && xb + 5 < i32(p.IW));
    let av_0 = A4_at(((abase + ar_0 * p.QH) * p.QW + qx0) / 4u);
    let av_1 = A4_at(((abase + ar_1 * p.QH) * p.QW + qx0) / 4u);
    let xs_0_0 = vec3f(ring0_s0, ring0_v1.x, ring0_v1.y);
    let xs_0_1 = vec3f(ring0_v1.x, ring0_v1.y, ring0_v1.z);
    let xs_0_2 = vec3f(ring0_v1.y, ring0_v1.z, ring0_v1.w);
    let xs_0_3 = vec3f(ring0_v1.z, ring0_v1.w, ring0_s5);
    let xs_1_0 = vec3f(ring1_s0, ring1_v1.x, ring1_v1.y);
    let xs_1_1 = vec3f(ring1_v1.x, ring1_v1.y, ring1_v1.z);
    let xs_1_2 = vec3f(ring1_v1.y, ring1_v1.z, ring1_v1.w);
    let xs_1_3 = vec3f(ring1_v1.z, ring1_v1.w, ring1_s5);
    let xs_2_0 = vec3f(xn_s0, xn_v1.x, xn_v1.y);
    let xs_2_1 = vec3f(xn_v1.x, xn_v1.y, xn_v1.z);
    let xs_2_2 = vec3f(xn_v1.y, xn_v1.z, xn_v1.w);
    let xs_2_3 = vec3f(xn_v1.z, xn_v1.w, xn_s5);
    let a_0 = subgroupBroadcast(av_0, 0u);
    acc_0_0 = fma(vec3f(a_0.w), xs_0_3, fma(vec3f(a_0.z), xs_0_2, fma(vec3f(a_0.y), xs_0_1, fma(vec3f(a_0.x), xs_0_0, acc_0_0))));
    acc_0_1 = fma(vec3f(a_0.w), xs_1_3, fma(vec3f(a_0.z), xs_1_2, fma(vec3f(a_0.y), xs_1_1, fma(vec3f(a_0.x), xs_1_0, acc_0_1))));
    acc_0_2 = fma(vec3f(a_0.w), xs_2_3, fma(vec3f(a_0.z), xs_2_2, fma(vec3f(a_0.y), xs_2_1, fma(vec3f(a_0.x), xs_2_0, acc_0_2))));
    let a_1 = subgroupBroadcast(av_0, 1u);
    acc_1_0 = fma(vec3f(a_1.w), xs_0_3, fma(vec3f(a_1.z), xs_0_2, fma(vec3f(a_1.y), xs_0_1, fma(vec3f(a_1.x), xs_0_0, acc_1_0))));
    acc_1_1 = fma(vec3f(a_1.w), xs_1_3, fma(vec3f(a_1.z), xs_1_2, fma(vec3f(a_1.y), xs_1_1, fma(vec3f(a_1.x), xs_1_0, acc_1_1))));
    acc_1_2 = fma(vec3f(a_1.w), xs_2_3, fma(vec3f(a_1.z), xs_2_2, fma(vec3f(a_1.y), xs_2_1, fma(vec3f(a_1.x), xs_2_0, acc_1_2))));
    let a_2 = subgroupBroadcast(av_0, 2u);
    acc_2_0 = fma(vec3f(a_2.w), xs_0_3, fma(vec3f(a_2.z), xs_0_2, fma(vec3f(a_2.y), xs_0_1, fma(vec3f(a_2.x), xs_0_0, acc_2_0))));
    acc_2_1 = fma(vec3f(a_2.w), xs_1_3, fma(vec3f(a_2.z), xs_1_2, fma(vec3f(a_2.y), xs_1_1, fma(vec3f(a_2.x), xs_1_0, acc_2_1))));
    acc_2_2 = fma(vec3f(a_2.w), xs_2_3, fma(vec3f(a_2.z), xs_2_2, fma(vec3f(a_2.y), xs_2_1, fma(vec3f(a_2.x), xs_2_0, acc_2_2))));
    let a_3 = subgroupBroadcast(av_0, 3u);
    acc_3_0 = fma(vec3f(a_3.w), xs_0_3, fma(vec3f(a_3.z), xs_0_2, fma(vec3f(a_3.y), xs_0_1, fma(vec3f(a_3.x), xs_0_0, acc_3_0))));
    acc_3_1 = fma(vec3f(a_3.w), xs_1_3, fma(vec3f(a_3.z), xs_1_2, fma(vec3f(a_3.y), xs_1_1, fma(vec3f(a_3.x), xs_1_0, acc_3_1))));
    acc_3_2 = fma(vec3f(a_3.w), xs_2_3, fma(vec3f(a_3.z), xs_2_2, fma(vec3f(a_3.y), xs_2_1, fma(vec3f(a_3.x), xs_2_0, acc_3_2))));
    let a_4 = subgroupBroadcast(av_0, 4u);
    acc_4_0 = fma(vec3f(a_4.w), xs_0_3, fma(vec3f(a_4.z), xs_0_2, fma(vec3f(a_4.y), xs_0_1, fma(vec3f(a_4.x), xs_0_0, acc_4_0))));
    acc_4_1 = fma(vec3f(a_4.w), xs_1_3, fma(vec3f(a_4.z), xs_1_2, fma(vec3f(a_4.y), xs_1_1, fma(vec3f(a_4.x), xs_1_0, acc_4_1))));
    acc_4_2 = fma(vec3f(a_4.w), xs_2_3, fma(vec3f(a_4.z), xs_2_2, fma(vec3f(a_4.y), xs_2_1, fma(vec3f(a_4.x), xs_2_0, acc_4_2))));
    let a_5 = subgroupBroadcast(av_0, 5u);
    acc_5_0 = fma(vec3f(a_5.w), xs_0_3, fma(vec3f(a_5.z), xs_0_2, fma(vec3f(a_5.y), xs_0_1, fma(vec3f(a_5.x), xs_0_0, acc_5_0))));
    acc_5_1 = fma(vec3f(a_5.w), xs_1_3, fma(vec3f(a_5.z), xs_1_2, fma(vec3f(a_5.y), xs_1_1, fma(vec3f(a_5.x), xs_1_0, acc_5_1))));
    acc_5_2 = fma(vec3f(a_5.w), xs_2_3, fma(vec3f(a_5.z), xs_2_2, fma(vec3f(a_5.y), xs_2_1, fma(vec3f(a_5.x), xs_2_0, acc_5_2))));
    let a_6 = subgroupBroadcast(av_0, 6u);
    acc_6_0 = fma(vec3f(a_6.w), xs_0_3, fma(vec3f(a_6.z), xs_0_2, fma(vec3f(a_6.y), xs_0_1, fma(vec3f(a_6.x), xs_0_0, acc_6_0))));
    acc_6_1 = fma(vec3f(a_6.w), xs_1_3, fma(vec3f(a_6.z), xs_1_2, fma(vec3f(a_6.y), xs_1_1, fma(vec3f(a_6.x), xs_1_0, acc_6_1))));
    acc_6_2 = fma(vec3f(a_6.w), xs_2_3, fma(vec3f(a_6.z), xs_2_2, fma(vec3f(a_6.y), xs_2_1, fma(vec3f(a_6.x), xs_2_0, acc_6_2))));
    let a_7 = subgroupBroadcast(av_0, 7u);
    acc_7_0 = fma(vec3f(a_7.w), xs_0_3, fma(vec3f(a_7.z), xs_0_2, fma(vec3f(a_7.y), xs_0_1, fma(vec3f(a_7.x), xs_0_0, acc_7_0))));
    acc_7_1 = fma(vec3f(a_7.w), xs_1_3, fma(vec3f(a_7.z), xs_1_2, fma(vec3f(a_7.y), xs_1_1, fma(vec3f(a_7.x), xs_1_0, acc_7_1))));
    acc_7_2 = fma(vec3f(a_7.w), xs_2_3, fma(vec3f(a_7.z), xs_2_2, fma(vec3f(a_7.y), xs_2_1, fma(vec3f(a_7.x), xs_2_0, acc_7_2))));
    let a_8 = subgroupBroadcast(av_1, 0u);
    acc_8_0 = fma(vec3f(a_8.w), xs_0_3, fma(vec3f(a_8.z), xs_0_2, fma(vec3f(a_8.y), xs_0_1, fma(vec3f(a_8.x), xs_0_0, acc_8_0))));
    acc_8_1 = fma(vec3f(a_8.w), xs_1_3, fma(vec3f(a_8.z), xs_1_2, fma(vec3f(a_8.y), xs_1_1, fma(vec3f(a_8.x), xs_1_0, acc_8_1))));
    acc_8_2 = fma(vec3f(a_8.w), xs_2_3, fma(vec3f(a_8.z), xs_2_2, fma(vec3f(a_8.y), xs_2_1, fma(vec3f(a_8.x), xs_2_0, acc_8_2))));
    let a_9 = subgroupBroadcast(av_1, 1u);
    acc_9_0 = fma(vec3f(a_9.w), xs_0_3, fma(vec3f(a_9.z), xs_0_2, fma(vec3f(a_9.y), xs_0_1, fma(vec3f(a_9.x), xs_0_0, acc_9_0))));
    acc_9_1 = fma(vec3f(a_9.w), xs_1_3, fma(vec3f(a_9.z), xs_1_2, fma(vec3f(a_9.y), xs_1_1, fma(vec3f(a_9.x), xs_1_0, acc_9_1))));
    acc_9_2 = fma(vec3f(a_9.w), xs_2_3, fma(vec3f(a_9.z), xs_2_2, fma(vec3f(a_9.y), xs_2_1, fma(vec3f(a_9.x), xs_2_0, acc_9_2))));
    let a_10 = subgroupBroadcast(av_1, 2u);
    acc_10_0 = fma(vec3f(a_10.w), xs_0_3, fma(vec3f(a_10.z), xs_0_2, fma(vec3f(a_10.y), xs_0_1, fma(vec3f(a_10.x), xs_0_0, acc_10_0))));
    acc_10_1 = fma(vec3f(a_10.w), xs_1_3, fma(vec3f(a_10.z), xs_1_2, fma(vec3f(a_10.y), xs_1_1, fma(vec3f(a_10.x), xs_1_0, acc_10_1))));
    acc_10_2 = fma(vec3f(a_10.w), xs_2_3, fma(vec3f(a_10.z), xs_2_2, fma(vec3f(a_10.y), xs_2_1, fma(vec3f(a_10.x), xs_2_0, acc_10_2))));
    let a_11 = subgroupBroadcast(av_1, 3u);
    acc_11_0 = fma(vec3f(a_11.w), xs_0_3, fma(vec3f(a_11.z), xs_0_2, fma(vec3f(a_11.y), xs_0_1, fma(vec3f(a_11.x), xs_0_0, acc_11_0))));
    acc_11_1 = fma(vec3f(a_11.w), xs_1_3, fma(vec3f(a_11.z), xs_1_2, fma(vec3f(a_11.y), xs_1_1, fma(vec3f(a_11.x), xs_1_0, acc_11_1))));
    acc_11_2 = fma(vec3f(a_11.w), xs_2_3, fma(vec3f(a_11.z), xs_2_2, fma(vec3f(a_11.y), xs_2_1, fma(vec3f(a_11.x), xs_2_0, acc_11_2))));
    let a_12 = subgroupBroadcast(av_1, 4u);
    acc_12_0 = fma(vec3f(a_12.w), xs_0_3, fma(vec3f(a_12.z), xs_0_2, fma(vec3f(a_12.y), xs_0_1, fma(vec3f(a_12.x), xs_0_0, acc_12_0))));
    acc_12_1 = fma(vec3f(a_12.w), xs_1_3, fma(vec3f(a_12.z), xs_1_2, fma(vec3f(a_12.y), xs_1_1, fma(vec3f(a_12.x), xs_1_0, acc_12_1))));
    acc_12_2 = fma(vec3f(a_12.w), xs_2_3, fma(vec3f(a_12.z), xs_2_2, fma(vec3f(a_12.y), xs_2_1, fma(vec3f(a_12.x), xs_2_0, acc_12_2))));
    let a_13 = subgroupBroadcast(av_1, 5u);
    acc_13_0 = fma(vec3f(a_13.w), xs_0_3, fma(vec3f(a_13.z), xs_0_2, fma(vec3f(a_13.y), xs_0_1, fma(vec3f(a_13.x), xs_0_0, acc_13_0))));
    acc_13_1 = fma(vec3f(a_13.w), xs_1_3, fma(vec3f(a_13.z), xs_1_2, fma(vec3f(a_13.y), xs_1_1, fma(vec3f(a_13.x), xs_1_0, acc_13_1))));
    acc_13_2 = fma(vec3f(a_13.w), xs_2_3, fma(vec3f(a_13.z), xs_2_2, fma(vec3f(a_13.y), xs_2_1, fma(vec3f(a_13.x), xs_2_0, acc_13_2))));
    let a_14 = subgroupBroadcast(av_1, 6u);
    acc_14_0 = fma(vec3f(a_14.w), xs_0_3, fma(vec3f(a_14.z), xs_0_2, fma(vec3f(a_14.y), xs_0_1, fma(vec3f(a_14.x), xs_0_0, acc_14_0))));
    acc_14_1 = fma(vec3f(a_14.w), xs_1_3, fma(vec3f(a_14.z), xs_1_2, fma(vec3f(a_14.y), xs_1_1, fma(vec3f(a_14.x), xs_1_0, acc_14_1))));
    acc_14_2 = fma(vec3f(a_14.w), xs_2_3, fma(vec3f(a_14.z), xs_2_2, fma(vec3f(a_14.y), xs_2_1, fma(vec3f(a_14.x), xs_2_0, acc_14_2))));
    let a_15 = subgroupBroadcast(av_1, 7u);
    acc_15_0 = fma(vec3f(a_15.w), xs_0_3, fma(vec3f(a_15.z), xs_0_2, fma(vec3f(a_15.y), xs_0_1, fma(vec3f(a_15.x), xs_0_0, acc_15_0))));
    acc_15_1 = fma(vec3f(a_15.w), xs_1_3, fma(vec3f(a_15.z), xs_1_2, fma(vec3f(a_15.y), xs_1_1, fma(vec3f(a_15.x), xs_1_0, acc_15_1))));
    acc_15_2 = fma(vec3f(a_15.w), xs_2_3, fma(vec3f(a_15.z), xs_2_2, fma(vec3f(a_15.y), xs_2_1, fma(vec3f(a_15.x), xs_2_0, acc_15_2))));
    ring0_v1 = ring1_v1;
    ring0_s0 = ring1_s0;
    ring0_s5 = ring1_s5;
    ring1_v1 = xn_v1;
    ring1_s0 = xn_s0;
    ring1_s5 = xn_s5;
    qy += 1u;
    let wrapy = qy == p.QH;
    qy = select(qy, 0u, wrapy);
    qg += select(0u, 1u, wrapy);
    let wrapx = qg == p.NGI;
    qg = select(qg, 0u, wrapx);
    b += select(0u, 1u, wrapx);
  }
  if (m0 + 0u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 0u) * p.NCG + kin * 3u + 0u] = vec4f(acc_0_0, 0.0); }
  if (m0 + 0u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 0u) * p.NCG + kin * 3u + 1u] = vec4f(acc_0_1, 0.0); }
  if (m0 + 0u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 0u) * p.NCG + kin * 3u + 2u] = vec4f(acc_0_2, 0.0); }
  if (m0 + 1u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 1u) * p.NCG + kin * 3u + 0u] = vec4f(acc_1_0, 0.0); }
  if (m0 + 1u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 1u) * p.NCG + kin * 3u + 1u] = vec4f(acc_1_1, 0.0); }
  if (m0 + 1u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 1u) * p.NCG + kin * 3u + 2u] = vec4f(acc_1_2, 0.0); }
  if (m0 + 2u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 2u) * p.NCG + kin * 3u + 0u] = vec4f(acc_2_0, 0.0); }
  if (m0 + 2u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 2u) * p.NCG + kin * 3u + 1u] = vec4f(acc_2_1, 0.0); }
  if (m0 + 2u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 2u) * p.NCG + kin * 3u + 2u] = vec4f(acc_2_2, 0.0); }
  if (m0 + 3u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 3u) * p.NCG + kin * 3u + 0u] = vec4f(acc_3_0, 0.0); }
  if (m0 + 3u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 3u) * p.NCG + kin * 3u + 1u] = vec4f(acc_3_1, 0.0); }
  if (m0 + 3u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 3u) * p.NCG + kin * 3u + 2u] = vec4f(acc_3_2, 0.0); }
  if (m0 + 4u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 4u) * p.NCG + kin * 3u + 0u] = vec4f(acc_4_0, 0.0); }
  if (m0 + 4u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 4u) * p.NCG + kin * 3u + 1u] = vec4f(acc_4_1, 0.0); }
  if (m0 + 4u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 4u) * p.NCG + kin * 3u + 2u] = vec4f(acc_4_2, 0.0); }
  if (m0 + 5u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 5u) * p.NCG + kin * 3u + 0u] = vec4f(acc_5_0, 0.0); }
  if (m0 + 5u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 5u) * p.NCG + kin * 3u + 1u] = vec4f(acc_5_1, 0.0); }
  if (m0 + 5u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 5u) * p.NCG + kin * 3u + 2u] = vec4f(acc_5_2, 0.0); }
  if (m0 + 6u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 6u) * p.NCG + kin * 3u + 0u] = vec4f(acc_6_0, 0.0); }
  if (m0 + 6u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 6u) * p.NCG + kin * 3u + 1u] = vec4f(acc_6_1, 0.0); }
  if (m0 + 6u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 6u) * p.NCG + kin * 3u + 2u] = vec4f(acc_6_2, 0.0); }
  if (m0 + 7u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 7u) * p.NCG + kin * 3u + 0u] = vec4f(acc_7_0, 0.0); }
  if (m0 + 7u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 7u) * p.NCG + kin * 3u + 1u] = vec4f(acc_7_1, 0.0); }
  if (m0 + 7u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 7u) * p.NCG + kin * 3u + 2u] = vec4f(acc_7_2, 0.0); }
  if (m0 + 8u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 8u) * p.NCG + kin * 3u + 0u] = vec4f(acc_8_0, 0.0); }
  if (m0 + 8u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 8u) * p.NCG + kin * 3u + 1u] = vec4f(acc_8_1, 0.0); }
  if (m0 + 8u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 8u) * p.NCG + kin * 3u + 2u] = vec4f(acc_8_2, 0.0); }
  if (m0 + 9u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 9u) * p.NCG + kin * 3u + 0u] = vec4f(acc_9_0, 0.0); }
  if (m0 + 9u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 9u) * p.NCG + kin * 3u + 1u] = vec4f(acc_9_1, 0.0); }
  if (m0 + 9u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 9u) * p.NCG + kin * 3u + 2u] = vec4f(acc_9_2, 0.0); }
  if (m0 + 10u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 10u) * p.NCG + kin * 3u + 0u] = vec4f(acc_10_0, 0.0); }
  if (m0 + 10u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 10u) * p.NCG + kin * 3u + 1u] = vec4f(acc_10_1, 0.0); }
  if (m0 + 10u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 10u) * p.NCG + kin * 3u + 2u] = vec4f(acc_10_2, 0.0); }
  if (m0 + 11u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 11u) * p.NCG + kin * 3u + 0u] = vec4f(acc_11_0, 0.0); }
  if (m0 + 11u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 11u) * p.NCG + kin * 3u + 1u] = vec4f(acc_11_1, 0.0); }
  if (m0 + 11u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 11u) * p.NCG + kin * 3u + 2u] = vec4f(acc_11_2, 0.0); }
  if (m0 + 12u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 12u) * p.NCG + kin * 3u + 0u] = vec4f(acc_12_0, 0.0); }
  if (m0 + 12u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 12u) * p.NCG + kin * 3u + 1u] = vec4f(acc_12_1, 0.0); }
  if (m0 + 12u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 12u) * p.NCG + kin * 3u + 2u] = vec4f(acc_12_2, 0.0); }
  if (m0 + 13u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 13u) * p.NCG + kin * 3u + 0u] = vec4f(acc_13_0, 0.0); }
  if (m0 + 13u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 13u) * p.NCG + kin * 3u + 1u] = vec4f(acc_13_1, 0.0); }
  if (m0 + 13u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 13u) * p.NCG + kin * 3u + 2u] = vec4f(acc_13_2, 0.0); }
  if (m0 + 14u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 14u) * p.NCG + kin * 3u + 0u] = vec4f(acc_14_0, 0.0); }
  if (m0 + 14u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 14u) * p.NCG + kin * 3u + 1u] = vec4f(acc_14_1, 0.0); }
  if (m0 + 14u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 14u) * p.NCG + kin * 3u + 2u] = vec4f(acc_14_2, 0.0); }
  if (m0 + 15u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 15u) * p.NCG + kin * 3u + 0u] = vec4f(acc_15_0, 0.0); }
  if (m0 + 15u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 15u) * p.NCG + kin * 3u + 1u] = vec4f(acc_15_1, 0.0); }
  if (m0 + 15u < p.ROWS && kinr < p.KIN) { P[(wg.z * p.ROWS + m0 + 15u) * p.NCG + kin * 3u + 2u] = vec4f(acc_15_2, 0.0); }
}

