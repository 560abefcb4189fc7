
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


// dW[r, kx] = sum over chunks s (in order) of P[s, r, kx] for each kernel row r = (row * KIN + kin)
// * KH + ky, whose KW taps P pads to G vec4s. One invocation per vec4 of P's rows: aligned vec4
// loads and no index divisions (llvmpipe divides per lane, so a thread per weight with four
// divisions was several times slower; bench: conv.*.wgrad). Chunks are added in a fixed order.
struct Params { N4: u32, S: u32, _p0: u32, _p1: u32 }  // N4: vec4s of one chunk
@group(0) @binding(0) var<storage, read> P: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> dW: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.N4) { return; }
  var s = vec4f(0.0);
  for (var c = 0u; c < p.S; c++) { s += P[c * p.N4 + i]; }
  let o = i * 3u;
  dW[o + 0u] = s.x;
  dW[o + 1u] = s.y;
  dW[o + 2u] = s.z;
}

