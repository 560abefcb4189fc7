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


// One subgroup: R GEMM rows (output channels) x 8 lanes x PJ (4, 8 or 16) adjacent positions per lane.
struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, NG: u32,
  OH: u32, OW: u32, OSY: u32, OSX: u32,
  OPY: u32, OPX: u32, SY: u32, KSTEPS: u32,
  OFFY: i32, OFFX: i32, NPOS: u32, KSTRIDE: u32,
  KITERS: u32, TY: u32, HAS_BIAS: u32, RELU: u32,
}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> X4: array<vec4f>;
@group(0) @binding(2) var<storage, read> Wp: array<vec4f>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<vec4f>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(subgroup_invocation_id) lane: u32) {
  // This lane's PJ positions: group -> (b, qy, qx0); a lane past the end repeats the last one.
  // Position tiles run over x and z (more than 65535 of them need z).
  let tile = wg.x + wg.z * nwg.x;
  let live = tile * 8u + lane < p.NPOS;
  let grp = min(tile * 8u + lane, p.NPOS - 1u);
  let b = grp / (p.QH * p.NG);
  let rest = grp - b * (p.QH * p.NG);
  let qy = rest / p.NG;
  let qx0 = (rest - qy * p.NG) * 16u;
  let m0 = wg.y * 16u;
  // The weight row this lane loads for the subgroup (rows are padded to a multiple of R).
  let wrow = m0 + min(lane, 16u - 1u);
  let IHW = p.IH * p.IW;
  let xq = i32(qx0 * 1u) + p.OFFX;
  let ix_m2 = xq + -2;
  let ok_m2 = ix_m2 >= 0 && ix_m2 < i32(p.IW);
  let ixc_m2 = u32(clamp(ix_m2, 0, i32(p.IW) - 1));
  let ix_15 = xq + 15;
  let ok_15 = ix_15 >= 0 && ix_15 < i32(p.IW);
  let ixc_15 = u32(clamp(ix_15, 0, i32(p.IW) - 1));
  let okv_m1 = xq + -1 >= 0 && xq + -1 < i32(p.IW);
  let ixv_m1 = select(0u, u32(xq + -1), okv_m1);
  let okv_3 = xq + 3 >= 0 && xq + 3 < i32(p.IW);
  let ixv_3 = select(0u, u32(xq + 3), okv_3);
  let okv_7 = xq + 7 >= 0 && xq + 7 < i32(p.IW);
  let ixv_7 = select(0u, u32(xq + 7), okv_7);
  let okv_11 = xq + 11 >= 0 && xq + 11 < i32(p.IW);
  let ixv_11 = select(0u, u32(xq + 11), okv_11);
  let wb_0 = (wrow + 0u) * (p.KITERS * 1u);
  let wb_1 = (wrow + 8u) * (p.KITERS * 1u);
  var acc_0_0 = vec4f(0.0);
  var acc_0_1 = vec4f(0.0);
  var acc_0_2 = vec4f(0.0);
  var acc_0_3 = vec4f(0.0);
  var acc_1_0 = vec4f(0.0);
  var acc_1_1 = vec4f(0.0);
  var acc_1_2 = vec4f(0.0);
  var acc_1_3 = vec4f(0.0);
  var acc_2_0 = vec4f(0.0);
  var acc_2_1 = vec4f(0.0);
  var acc_2_2 = vec4f(0.0);
  var acc_2_3 = vec4f(0.0);
  var acc_3_0 = vec4f(0.0);
  var acc_3_1 = vec4f(0.0);
  var acc_3_2 = vec4f(0.0);
  var acc_3_3 = vec4f(0.0);
  var acc_4_0 = vec4f(0.0);
  var acc_4_1 = vec4f(0.0);
  var acc_4_2 = vec4f(0.0);
  var acc_4_3 = vec4f(0.0);
  var acc_5_0 = vec4f(0.0);
  var acc_5_1 = vec4f(0.0);
  var acc_5_2 = vec4f(0.0);
  var acc_5_3 = vec4f(0.0);
  var acc_6_0 = vec4f(0.0);
  var acc_6_1 = vec4f(0.0);
  var acc_6_2 = vec4f(0.0);
  var acc_6_3 = vec4f(0.0);
  var acc_7_0 = vec4f(0.0);
  var acc_7_1 = vec4f(0.0);
  var acc_7_2 = vec4f(0.0);
  var acc_7_3 = vec4f(0.0);
  var acc_8_0 = vec4f(0.0);
  var acc_8_1 = vec4f(0.0);
  var acc_8_2 = vec4f(0.0);
  var acc_8_3 = vec4f(0.0);
  var acc_9_0 = vec4f(0.0);
  var acc_9_1 = vec4f(0.0);
  var acc_9_2 = vec4f(0.0);
  var acc_9_3 = vec4f(0.0);
  var acc_10_0 = vec4f(0.0);
  var acc_10_1 = vec4f(0.0);
  var acc_10_2 = vec4f(0.0);
  var acc_10_3 = vec4f(0.0);
  var acc_11_0 = vec4f(0.0);
  var acc_11_1 = vec4f(0.0);
  var acc_11_2 = vec4f(0.0);
  var acc_11_3 = vec4f(0.0);
  var acc_12_0 = vec4f(0.0);
  var acc_12_1 = vec4f(0.0);
  var acc_12_2 = vec4f(0.0);
  var acc_12_3 = vec4f(0.0);
  var acc_13_0 = vec4f(0.0);
  var acc_13_1 = vec4f(0.0);
  var acc_13_2 = vec4f(0.0);
  var acc_13_3 = vec4f(0.0);
  var acc_14_0 = vec4f(0.0);
  var acc_14_1 = vec4f(0.0);
  var acc_14_2 = vec4f(0.0);
  var acc_14_3 = vec4f(0.0);
  var acc_15_0 = vec4f(0.0);
  var acc_15_1 = vec4f(0.0);
  var acc_15_2 = vec4f(0.0);
  var acc_15_3 = vec4f(0.0);
  // Iteration it covers input channel (or group of four) k and kernel row ty. (Unrolling the
  // rows instead gains nothing per FMA and makes kernels several times slower to compile.)
  var k = 0u;
  var ty = 0u;
  for (var it = 0u; it < p.KITERS; it++) {
    let xk = k * p.KSTRIDE;
    let iy = i32(qy * p.SY) - i32(ty) + p.OFFY;
    let rok = iy >= 0 && iy < i32(p.IH);
    let rix = (b * p.KIN * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW;
    let xo_0 = rix + (xk) * IHW;
    let xv_0_m1 = select(vec4f(0.0), X4[(xo_0 + ixv_m1) / 4u], rok && okv_m1);
    let xv_0_3 = select(vec4f(0.0), X4[(xo_0 + ixv_3) / 4u], rok && okv_3);
    let xv_0_7 = select(vec4f(0.0), X4[(xo_0 + ixv_7) / 4u], rok && okv_7);
    let xv_0_11 = select(vec4f(0.0), X4[(xo_0 + ixv_11) / 4u], rok && okv_11);
    let x_0_m2 = select(0.0, X[xo_0 + ixc_m2], rok && ok_m2);
    let x_0_15 = select(0.0, X[xo_0 + ixc_15], rok && ok_15);
    let w_0_0 = Wp[wb_0 + it * 1u + 0u];
    let w_0_1 = Wp[wb_1 + it * 1u + 0u];
    let xs_0 = vec4f(xv_0_m1.y, xv_0_m1.z, xv_0_m1.w, xv_0_3.x);
    let xs_1 = vec4f(xv_0_m1.x, xv_0_m1.y, xv_0_m1.z, xv_0_m1.w);
    let xs_2 = vec4f(x_0_m2, xv_0_m1.x, xv_0_m1.y, xv_0_m1.z);
    let xs_3 = vec4f(xv_0_3.y, xv_0_3.z, xv_0_3.w, xv_0_7.x);
    let xs_4 = vec4f(xv_0_3.x, xv_0_3.y, xv_0_3.z, xv_0_3.w);
    let xs_5 = vec4f(xv_0_m1.w, xv_0_3.x, xv_0_3.y, xv_0_3.z);
    let xs_6 = vec4f(xv_0_7.y, xv_0_7.z, xv_0_7.w, xv_0_11.x);
    let xs_7 = vec4f(xv_0_7.x, xv_0_7.y, xv_0_7.z, xv_0_7.w);
    let xs_8 = vec4f(xv_0_3.w, xv_0_7.x, xv_0_7.y, xv_0_7.z);
    let xs_9 = vec4f(xv_0_11.y, xv_0_11.z, xv_0_11.w, x_0_15);
    let xs_10 = vec4f(xv_0_11.x, xv_0_11.y, xv_0_11.z, xv_0_11.w);
    let xs_11 = vec4f(xv_0_7.w, xv_0_11.x, xv_0_11.y, xv_0_11.z);
    let s_0_0 = subgroupBroadcast(w_0_0, 0u);
    acc_0_0 = fma(vec4f(s_0_0.z), xs_2, fma(vec4f(s_0_0.y), xs_1, fma(vec4f(s_0_0.x), xs_0, acc_0_0)));
    acc_0_1 = fma(vec4f(s_0_0.z), xs_5, fma(vec4f(s_0_0.y), xs_4, fma(vec4f(s_0_0.x), xs_3, acc_0_1)));
    acc_0_2 = fma(vec4f(s_0_0.z), xs_8, fma(vec4f(s_0_0.y), xs_7, fma(vec4f(s_0_0.x), xs_6, acc_0_2)));
    acc_0_3 = fma(vec4f(s_0_0.z), xs_11, fma(vec4f(s_0_0.y), xs_10, fma(vec4f(s_0_0.x), xs_9, acc_0_3)));
    let s_1_0 = subgroupBroadcast(w_0_0, 1u);
    acc_1_0 = fma(vec4f(s_1_0.z), xs_2, fma(vec4f(s_1_0.y), xs_1, fma(vec4f(s_1_0.x), xs_0, acc_1_0)));
    acc_1_1 = fma(vec4f(s_1_0.z), xs_5, fma(vec4f(s_1_0.y), xs_4, fma(vec4f(s_1_0.x), xs_3, acc_1_1)));
    acc_1_2 = fma(vec4f(s_1_0.z), xs_8, fma(vec4f(s_1_0.y), xs_7, fma(vec4f(s_1_0.x), xs_6, acc_1_2)));
    acc_1_3 = fma(vec4f(s_1_0.z), xs_11, fma(vec4f(s_1_0.y), xs_10, fma(vec4f(s_1_0.x), xs_9, acc_1_3)));
    let s_2_0 = subgroupBroadcast(w_0_0, 2u);
    acc_2_0 = fma(vec4f(s_2_0.z), xs_2, fma(vec4f(s_2_0.y), xs_1, fma(vec4f(s_2_0.x), xs_0, acc_2_0)));
    acc_2_1 = fma(vec4f(s_2_0.z), xs_5, fma(vec4f(s_2_0.y), xs_4, fma(vec4f(s_2_0.x), xs_3, acc_2_1)));
    acc_2_2 = fma(vec4f(s_2_0.z), xs_8, fma(vec4f(s_2_0.y), xs_7, fma(vec4f(s_2_0.x), xs_6, acc_2_2)));
    acc_2_3 = fma(vec4f(s_2_0.z), xs_11, fma(vec4f(s_2_0.y), xs_10, fma(vec4f(s_2_0.x), xs_9, acc_2_3)));
    let s_3_0 = subgroupBroadcast(w_0_0, 3u);
    acc_3_0 = fma(vec4f(s_3_0.z), xs_2, fma(vec4f(s_3_0.y), xs_1, fma(vec4f(s_3_0.x), xs_0, acc_3_0)));
    acc_3_1 = fma(vec4f(s_3_0.z), xs_5, fma(vec4f(s_3_0.y), xs_4, fma(vec4f(s_3_0.x), xs_3, acc_3_1)));
    acc_3_2 = fma(vec4f(s_3_0.z), xs_8, fma(vec4f(s_3_0.y), xs_7, fma(vec4f(s_3_0.x), xs_6, acc_3_2)));
    acc_3_3 = fma(vec4f(s_3_0.z), xs_11, fma(vec4f(s_3_0.y), xs_10, fma(vec4f(s_3_0.x), xs_9, acc_3_3)));
    let s_4_0 = subgroupBroadcast(w_0_0, 4u);
    acc_4_0 = fma(vec4f(s_4_0.z), xs_2, fma(vec4f(s_4_0.y), xs_1, fma(vec4f(s_4_0.x), xs_0, acc_4_0)));
    acc_4_1 = fma(vec4f(s_4_0.z), xs_5, fma(vec4f(s_4_0.y), xs_4, fma(vec4f(s_4_0.x), xs_3, acc_4_1)));
    acc_4_2 = fma(vec4f(s_4_0.z), xs_8, fma(vec4f(s_4_0.y), xs_7, fma(vec4f(s_4_0.x), xs_6, acc_4_2)));
    acc_4_3 = fma(vec4f(s_4_0.z), xs_11, fma(vec4f(s_4_0.y), xs_10, fma(vec4f(s_4_0.x), xs_9, acc_4_3)));
    let s_5_0 = subgroupBroadcast(w_0_0, 5u);
    acc_5_0 = fma(vec4f(s_5_0.z), xs_2, fma(vec4f(s_5_0.y), xs_1, fma(vec4f(s_5_0.x), xs_0, acc_5_0)));
    acc_5_1 = fma(vec4f(s_5_0.z), xs_5, fma(vec4f(s_5_0.y), xs_4, fma(vec4f(s_5_0.x), xs_3, acc_5_1)));
    acc_5_2 = fma(vec4f(s_5_0.z), xs_8, fma(vec4f(s_5_0.y), xs_7, fma(vec4f(s_5_0.x), xs_6, acc_5_2)));
    acc_5_3 = fma(vec4f(s_5_0.z), xs_11, fma(vec4f(s_5_0.y), xs_10, fma(vec4f(s_5_0.x), xs_9, acc_5_3)));
    let s_6_0 = subgroupBroadcast(w_0_0, 6u);
    acc_6_0 = fma(vec4f(s_6_0.z), xs_2, fma(vec4f(s_6_0.y), xs_1, fma(vec4f(s_6_0.x), xs_0, acc_6_0)));
    acc_6_1 = fma(vec4f(s_6_0.z), xs_5, fma(vec4f(s_6_0.y), xs_4, fma(vec4f(s_6_0.x), xs_3, acc_6_1)));
    acc_6_2 = fma(vec4f(s_6_0.z), xs_8, fma(vec4f(s_6_0.y), xs_7, fma(vec4f(s_6_0.x), xs_6, acc_6_2)));
    acc_6_3 = fma(vec4f(s_6_0.z), xs_11, fma(vec4f(s_6_0.y), xs_10, fma(vec4f(s_6_0.x), xs_9, acc_6_3)));
    let s_7_0 = subgroupBroadcast(w_0_0, 7u);
    acc_7_0 = fma(vec4f(s_7_0.z), xs_2, fma(vec4f(s_7_0.y), xs_1, fma(vec4f(s_7_0.x), xs_0, acc_7_0)));
    acc_7_1 = fma(vec4f(s_7_0.z), xs_5, fma(vec4f(s_7_0.y), xs_4, fma(vec4f(s_7_0.x), xs_3, acc_7_1)));
    acc_7_2 = fma(vec4f(s_7_0.z), xs_8, fma(vec4f(s_7_0.y), xs_7, fma(vec4f(s_7_0.x), xs_6, acc_7_2)));
    acc_7_3 = fma(vec4f(s_7_0.z), xs_11, fma(vec4f(s_7_0.y), xs_10, fma(vec4f(s_7_0.x), xs_9, acc_7_3)));
    let s_8_0 = subgroupBroadcast(w_0_1, 0u);
    acc_8_0 = fma(vec4f(s_8_0.z), xs_2, fma(vec4f(s_8_0.y), xs_1, fma(vec4f(s_8_0.x), xs_0, acc_8_0)));
    acc_8_1 = fma(vec4f(s_8_0.z), xs_5, fma(vec4f(s_8_0.y), xs_4, fma(vec4f(s_8_0.x), xs_3, acc_8_1)));
    acc_8_2 = fma(vec4f(s_8_0.z), xs_8, fma(vec4f(s_8_0.y), xs_7, fma(vec4f(s_8_0.x), xs_6, acc_8_2)));
    acc_8_3 = fma(vec4f(s_8_0.z), xs_11, fma(vec4f(s_8_0.y), xs_10, fma(vec4f(s_8_0.x), xs_9, acc_8_3)));
    let s_9_0 = subgroupBroadcast(w_0_1, 1u);
    acc_9_0 = fma(vec4f(s_9_0.z), xs_2, fma(vec4f(s_9_0.y), xs_1, fma(vec4f(s_9_0.x), xs_0, acc_9_0)));
    acc_9_1 = fma(vec4f(s_9_0.z), xs_5, fma(vec4f(s_9_0.y), xs_4, fma(vec4f(s_9_0.x), xs_3, acc_9_1)));
    acc_9_2 = fma(vec4f(s_9_0.z), xs_8, fma(vec4f(s_9_0.y), xs_7, fma(vec4f(s_9_0.x), xs_6, acc_9_2)));
    acc_9_3 = fma(vec4f(s_9_0.z), xs_11, fma(vec4f(s_9_0.y), xs_10, fma(vec4f(s_9_0.x), xs_9, acc_9_3)));
    let s_10_0 = subgroupBroadcast(w_0_1, 2u);
    acc_10_0 = fma(vec4f(s_10_0.z), xs_2, fma(vec4f(s_10_0.y), xs_1, fma(vec4f(s_10_0.x), xs_0, acc_10_0)));
    acc_10_1 = fma(vec4f(s_10_0.z), xs_5, fma(vec4f(s_10_0.y), xs_4, fma(vec4f(s_10_0.x), xs_3, acc_10_1)));
    acc_10_2 = fma(vec4f(s_10_0.z), xs_8, fma(vec4f(s_10_0.y), xs_7, fma(vec4f(s_10_0.x), xs_6, acc_10_2)));
    acc_10_3 = fma(vec4f(s_10_0.z), xs_11, fma(vec4f(s_10_0.y), xs_10, fma(vec4f(s_10_0.x), xs_9, acc_10_3)));
    let s_11_0 = subgroupBroadcast(w_0_1, 3u);
    acc_11_0 = fma(vec4f(s_11_0.z), xs_2, fma(vec4f(s_11_0.y), xs_1, fma(vec4f(s_11_0.x), xs_0, acc_11_0)));
    acc_11_1 = fma(vec4f(s_11_0.z), xs_5, fma(vec4f(s_11_0.y), xs_4, fma(vec4f(s_11_0.x), xs_3, acc_11_1)));
    acc_11_2 = fma(vec4f(s_11_0.z), xs_8, fma(vec4f(s_11_0.y), xs_7, fma(vec4f(s_11_0.x), xs_6, acc_11_2)));
    acc_11_3 = fma(vec4f(s_11_0.z), xs_11, fma(vec4f(s_11_0.y), xs_10, fma(vec4f(s_11_0.x), xs_9, acc_11_3)));
    let s_12_0 = subgroupBroadcast(w_0_1, 4u);
    acc_12_0 = fma(vec4f(s_12_0.z), xs_2, fma(vec4f(s_12_0.y), xs_1, fma(vec4f(s_12_0.x), xs_0, acc_12_0)));
    acc_12_1 = fma(vec4f(s_12_0.z), xs_5, fma(vec4f(s_12_0.y), xs_4, fma(vec4f(s_12_0.x), xs_3, acc_12_1)));
    acc_12_2 = fma(vec4f(s_12_0.z), xs_8, fma(vec4f(s_12_0.y), xs_7, fma(vec4f(s_12_0.x), xs_6, acc_12_2)));
    acc_12_3 = fma(vec4f(s_12_0.z), xs_11, fma(vec4f(s_12_0.y), xs_10, fma(vec4f(s_12_0.x), xs_9, acc_12_3)));
    let s_13_0 = subgroupBroadcast(w_0_1, 5u);
    acc_13_0 = fma(vec4f(s_13_0.z), xs_2, fma(vec4f(s_13_0.y), xs_1, fma(vec4f(s_13_0.x), xs_0, acc_13_0)));
    acc_13_1 = fma(vec4f(s_13_0.z), xs_5, fma(vec4f(s_13_0.y), xs_4, fma(vec4f(s_13_0.x), xs_3, acc_13_1)));
    acc_13_2 = fma(vec4f(s_13_0.z), xs_8, fma(vec4f(s_13_0.y), xs_7, fma(vec4f(s_13_0.x), xs_6, acc_13_2)));
    acc_13_3 = fma(vec4f(s_13_0.z), xs_11, fma(vec4f(s_13_0.y), xs_10, fma(vec4f(s_13_0.x), xs_9, acc_13_3)));
    let s_14_0 = subgroupBroadcast(w_0_1, 6u);
    acc_14_0 = fma(vec4f(s_14_0.z), xs_2, fma(vec4f(s_14_0.y), xs_1, fma(vec4f(s_14_0.x), xs_0, acc_14_0)));
    acc_14_1 = fma(vec4f(s_14_0.z), xs_5, fma(vec4f(s_14_0.y), xs_4, fma(vec4f(s_14_0.x), xs_3, acc_14_1)));
    acc_14_2 = fma(vec4f(s_14_0.z), xs_8, fma(vec4f(s_14_0.y), xs_7, fma(vec4f(s_14_0.x), xs_6, acc_14_2)));
    acc_14_3 = fma(vec4f(s_14_0.z), xs_11, fma(vec4f(s_14_0.y), xs_10, fma(vec4f(s_14_0.x), xs_9, acc_14_3)));
    let s_15_0 = subgroupBroadcast(w_0_1, 7u);
    acc_15_0 = fma(vec4f(s_15_0.z), xs_2, fma(vec4f(s_15_0.y), xs_1, fma(vec4f(s_15_0.x), xs_0, acc_15_0)));
    acc_15_1 = fma(vec4f(s_15_0.z), xs_5, fma(vec4f(s_15_0.y), xs_4, fma(vec4f(s_15_0.x), xs_3, acc_15_1)));
    acc_15_2 = fma(vec4f(s_15_0.z), xs_8, fma(vec4f(s_15_0.y), xs_7, fma(vec4f(s_15_0.x), xs_6, acc_15_2)));
    acc_15_3 = fma(vec4f(s_15_0.z), xs_11, fma(vec4f(s_15_0.y), xs_10, fma(vec4f(s_15_0.x), xs_9, acc_15_3)));
    ty += 1u;
    let wrap = ty == p.TY;
    ty = select(ty, 0u, wrap);
    k += select(0u, 1u, wrap);
  }
  if (!live) { return; }
  let oy = qy * p.OSY + p.OPY;
  if (m0 + 0u < p.ROWS) {
    let row = m0 + 0u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_0_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_0_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_0_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_0_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 1u < p.ROWS) {
    let row = m0 + 1u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_1_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_1_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_1_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_1_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 2u < p.ROWS) {
    let row = m0 + 2u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_2_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_2_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_2_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_2_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 3u < p.ROWS) {
    let row = m0 + 3u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_3_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_3_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_3_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_3_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 4u < p.ROWS) {
    let row = m0 + 4u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_4_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_4_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_4_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_4_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 5u < p.ROWS) {
    let row = m0 + 5u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_5_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_5_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_5_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_5_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 6u < p.ROWS) {
    let row = m0 + 6u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_6_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_6_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_6_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_6_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 7u < p.ROWS) {
    let row = m0 + 7u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_7_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_7_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_7_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_7_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 8u < p.ROWS) {
    let row = m0 + 8u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_8_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_8_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_8_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_8_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 9u < p.ROWS) {
    let row = m0 + 9u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_9_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_9_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_9_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_9_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 10u < p.ROWS) {
    let row = m0 + 10u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_10_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_10_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_10_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_10_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 11u < p.ROWS) {
    let row = m0 + 11u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_11_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_11_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_11_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_11_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 12u < p.ROWS) {
    let row = m0 + 12u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_12_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_12_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_12_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_12_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 13u < p.ROWS) {
    let row = m0 + 13u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_13_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_13_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_13_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_13_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 14u < p.ROWS) {
    let row = m0 + 14u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_14_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_14_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_14_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_14_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
  if (m0 + 15u < p.ROWS) {
    let row = m0 + 15u;
    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;
    let bv = select(0.0, bias[min(row, arrayLength(&bias) - 1u)], p.HAS_BIAS != 0u);
    var v0 = acc_15_0 + vec4f(bv);
    if (p.RELU != 0u) { v0 = max(v0, vec4f(0.0)); }
    if (qx0 + 0u < p.QW) { Y[(ob + qx0 + 0u) / 4u] = v0; }
    var v1 = acc_15_1 + vec4f(bv);
    if (p.RELU != 0u) { v1 = max(v1, vec4f(0.0)); }
    if (qx0 + 4u < p.QW) { Y[(ob + qx0 + 4u) / 4u] = v1; }
    var v2 = acc_15_2 + vec4f(bv);
    if (p.RELU != 0u) { v2 = max(v2, vec4f(0.0)); }
    if (qx0 + 8u < p.QW) { Y[(ob + qx0 + 8u) / 4u] = v2; }
    var v3 = acc_15_3 + vec4f(bv);
    if (p.RELU != 0u) { v3 = max(v3, vec4f(0.0)); }
    if (qx0 + 12u < p.QW) { Y[(ob + qx0 + 12u) / 4u] = v3; }
  }
}

