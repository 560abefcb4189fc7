{{ENABLE}}
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

// @kernel conv_reg
// One subgroup: R GEMM rows (output channels) x 8 lanes x PJ (4, 8 or 16) adjacent positions per lane.
{{PARAMS}}
{{BINDINGS}}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin({{LANE}}) lane: u32) {
  // This lane's PJ positions: group -> (b, qy, qx0); a lane past the end repeats the last one.
  // Position tiles run over x and z (more than 65535 of them need z).
  let tile = wg.x + wg.z * nwg.x;
  let live = tile * 8u + lane < p.NPOS;
  let grp = min(tile * 8u + lane, p.NPOS - 1u);
  let b = grp / (p.QH * p.NG);
  let rest = grp - b * (p.QH * p.NG);
  let qy = rest / p.NG;
  let qx0 = (rest - qy * p.NG) * {{PJ}}u;
  let m0 = wg.y * {{R}}u;
  // The weight row this lane loads for the subgroup (rows are padded to a multiple of R).
  let wrow = m0 + min(lane, {{R}}u - 1u);
  let IHW = p.IH * p.IW;
{{SETUP}}
{{ACC_DECL}}
  // Iteration it covers input channel (or group of four) k and kernel row ty. (Unrolling the
  // rows instead gains nothing per FMA and makes kernels several times slower to compile.)
  var k = 0u;
  var ty = 0u;
  for (var it = 0u; it < p.KITERS; it++) {
    let xk = k * p.KSTRIDE;
{{BODY}}
    ty += 1u;
    let wrap = ty == p.TY;
    ty = select(ty, 0u, wrap);
    k += select(0u, 1u, wrap);
  }
  if (!live) { return; }
{{EPILOGUE}}
}

// @kernel convw_reg
// Weight gradient, one subgroup: R rows (channels of A) x 8 lanes x CPL column groups per lane,
// a column group being (kin, ty, four taps). The reduction runs over the position groups
// (b, qy, four qx) of chunk wg.z, UQ groups per iteration (1: more were slower, bench conv.*.wgrad.b32) of a
// single flat loop (a nested loop over qx would run only a couple of times per row on small
// maps and pay its setup each time).
{{PARAMS}}
{{BINDINGS}}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin({{LANE}}) lane: u32) {
  let m0 = wg.y * {{R}}u;
  // Rows of A this lane loads for the subgroup (clamped: rows past ROWS are never stored).
{{AROWS}}
  // This lane's column groups (clamped: groups past NCG are never stored).
{{COLS}}
  // Iterations k0..k1 of this chunk; iteration k covers groups (b, qy, qg .. qg + UQ - 1).
  let k0 = wg.z * p.CHUNK;
  let k1 = min(k0 + p.CHUNK, p.KITERS);
  var qg = (k0 % p.NGI) * {{UQ}}u;
  var qy = (k0 / p.NGI) % p.QH;
  var b = k0 / (p.NGI * p.QH);
{{ACC_DECL}}
  for (var kk = k0; kk < k1; kk++) {
    let abase = (b * p.ROWS) * p.QH + qy;
{{BODY}}
    qg += {{UQ}}u;
    let wrapx = qg * 4u >= p.QW;
    qg = select(qg, 0u, wrapx);
    qy += select(0u, 1u, wrapx);
    let wrapy = qy == p.QH;
    qy = select(qy, 0u, wrapy);
    b += select(0u, 1u, wrapy);
  }
{{EPILOGUE}}
}

// @kernel convw_rows
// Weight gradient for stride-1 kernel rows (SY = 1, TY >= 2, one tap group): each lane owns one
// input channel kin and all TY kernel rows of it (R rows of A x 8 lanes x TY column groups), and
// the iterations walk down the output rows of a position column (b, four qx) with qy innermost.
// The input rows of consecutive iterations then overlap in TY - 1 rows: an iteration loads one
// new input row and shifts the others down a ring of loop-carried values (llvmpipe's per-lane
// loads cost far more than the shifts). Partial sums go to P[chunk] as convw_reg's do.
{{PARAMS}}
{{BINDINGS}}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin({{LANE}}) lane: u32) {
  let m0 = wg.y * {{R}}u;
  // Rows of A this lane loads for the subgroup (clamped: rows past ROWS are never stored).
{{AROWS}}
  // This lane's input channel (clamped: channels past KIN are never stored).
  let kinr = wg.x * 8u + lane;
  let kin = min(kinr, p.KIN - 1u);
  // Iterations k0..k1 of this chunk; iteration k covers (b, qg, qy) with k = (b NGI + qg) QH + qy.
  let k0 = wg.z * p.CHUNK;
  let k1 = min(k0 + p.CHUNK, p.KITERS);
  var qy = k0 % p.QH;
  var qg = (k0 / p.QH) % p.NGI;
  var b = k0 / (p.QH * p.NGI);
{{RING_DECL}}
{{ACC_DECL}}
  for (var kk = k0; kk < k1; kk++) {
    let qx0 = qg * 4u;
    let abase = (b * p.ROWS) * p.QH + qy;
    let chan = (b * p.KIN + kin) * p.IH;
    let xb = i32(qx0 * {{SX}}u) + p.OFFX;
    // A new column (or the chunk's first iteration): load the ring's TY - 1 rows afresh.
    if (kk == k0 || qy == 0u) {
{{RING_FILL}}
    }
{{BODY}}
{{RING_SHIFT}}
    qy += 1u;
    let wrapy = qy == p.QH;
    qy = select(qy, 0u, wrapy);
    qg += select(0u, 1u, wrapy);
    let wrapx = qg == p.NGI;
    qg = select(qg, 0u, wrapx);
    b += select(0u, 1u, wrapx);
  }
{{EPILOGUE}}
}

// @kernel conv_smem
// The GEMM tile of shaders/gemm_tile.wgsl (appended by the launcher) with A = the weights (64
// rows per workgroup, A-slot s: rows n0 + s + 16 i) and B = the input windows (64 positions,
// B-slot s: positions m0 + s + 16 i), k = (kin, ty, tx); both staged with consecutive threads
// along the slots, so consecutive threads read consecutive positions.
{{PARAMS}}
{{BINDINGS}}
const GEMM_A_K_FAST = false;
const GEMM_B_K_FAST = false;
// The thread's staged positions (B-slot lid.x): batch, position, and whether it exists.
struct GemmCtx { n0: u32, b: array<u32, 4>, qy: array<u32, 4>, qx: array<u32, 4>, ok: array<bool, 4> }

// k = (kin, ty, tx).
fn tap(k: u32) -> vec3u {
  return vec3u(k / (p.TX * p.TY), (k / p.TX) % p.TY, k % p.TX);
}

fn gemm_loadA(c: GemmCtx, k: u32, s: u32) -> vec4f {
  let t = tap(k);
  var wv = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let ln = c.n0 + s + 16u * i;
    let wi = ((min(ln, p.ROWS - 1u) * p.KINP + t.x) * p.TY + t.y) * p.TXP + t.z;
    wv[i] = select(0.0, Wp[wi], ln < p.ROWS);
  }
  return wv;
}

fn gemm_loadB(c: GemmCtx, k: u32, s: u32) -> vec4f {
  let t = tap(k);
  var xv = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let iy = i32(c.qy[i] * p.SY) + {{DIR}} * i32(t.y) + p.OFFY;
    let ix = i32(c.qx[i] * p.SX) + {{DIR}} * i32(t.z) + p.OFFX;
    let ok = c.ok[i] && iy >= 0 && iy < i32(p.IH) && ix >= 0 && ix < i32(p.IW);
    let xi = ((c.b[i] * p.KIN + t.x) * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW
      + u32(clamp(ix, 0, i32(p.IW) - 1));
    xv[i] = select(0.0, {{X_XI}}, ok);
  }
  return xv;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let m0 = (wg.x + wg.z * nwg.x) * 64u; // position tiles over x and z (> 65535 need z)
  let n0 = wg.y * 64u;
  var c: GemmCtx;
  c.n0 = n0;
  for (var i = 0u; i < 4u; i++) {
    let lm = m0 + lid.x + 16u * i;
    c.ok[i] = lm < p.MTOT;
    let pm = min(lm, p.MTOT - 1u);
    c.b[i] = pm / (p.QH * p.QW);
    let lq = pm - c.b[i] * (p.QH * p.QW);
    c.qy[i] = lq / p.QW;
    c.qx[i] = lq - c.qy[i] * p.QW;
  }
  var acc: array<vec4f, 4>;  // acc[j][i]: row n0 + lid.y + 16 j, position m0 + lid.x + 16 i
  gemm_tile(c, 0u, p.KTOT, lid, &acc);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.x + 16u * i;
    if (m >= p.MTOT) { continue; }
    let b = m / (p.QH * p.QW);
    let q = m - b * (p.QH * p.QW);
    let qy = q / p.QW;
    let qx = q - qy * p.QW;
    let oy = qy * p.OSY + p.OPY;
    let ox = qx * p.OSX + p.OPX;
    for (var j = 0u; j < 4u; j++) {
      let row = n0 + lid.y + 16u * j;
      if (row >= p.ROWS) { continue; }
      var v = acc[j][i]{{BIAS_ADD}};
      {{ACT}}
      Y[((b * p.ROWS + row) * p.OH + oy) * p.OW + ox] = {{Y_V}};
    }
  }
}

// @kernel convw_smem
// Weight gradient: the GEMM tile of shaders/gemm_tile.wgsl (appended by the launcher) over the
// positions k of chunk wg.z, with A = the input windows (64 columns (kin, ty, tx) per workgroup,
// A-slot s: columns n0 + s + 16 i) and B = the output gradient (64 rows, B-slot s: rows
// m0 + s + 16 i); partial sums go to P[chunk] in the same layout as convw_reg's.
{{PARAMS}}
{{BINDINGS}}
const GEMM_A_K_FAST = false;
const GEMM_B_K_FAST = false;
// The thread's staged columns (A-slot lid.x): tap, kernel row and input channel.
struct GemmCtx { m0: u32, tx: array<u32, 4>, ty: array<u32, 4>, kin: array<u32, 4>, n0: u32 }

// Position k = (b, qy, qx).
fn position(k: u32) -> vec3u {
  let b = k / (p.QH * p.QW);
  let q = k - b * (p.QH * p.QW);
  let qy = q / p.QW;
  return vec3u(b, qy, q - qy * p.QW);
}

fn gemm_loadA(c: GemmCtx, k: u32, s: u32) -> vec4f {
  let q = position(k);
  var xv = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let iy = i32(q.y * p.SY + c.ty[i]) + p.OFFY;
    let ix = i32(q.z * p.SX + c.tx[i]) + p.OFFX;
    let ok = c.n0 + s + 16u * i < p.NCOL && iy >= 0 && iy < i32(p.IH) && ix >= 0 && ix < i32(p.IW);
    let xi = ((q.x * p.KIN + c.kin[i]) * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW + u32(clamp(ix, 0, i32(p.IW) - 1));
    xv[i] = select(0.0, {{X_XI}}, ok);
  }
  return xv;
}

fn gemm_loadB(c: GemmCtx, k: u32, s: u32) -> vec4f {
  let q = position(k);
  var av = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let lm = c.m0 + s + 16u * i;
    av[i] = select(0.0, {{A_AT}}, lm < p.ROWS);
  }
  return av;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m0 = wg.x * 64u;
  let n0 = wg.y * 64u;
  let p0 = wg.z * p.CHUNK;
  let p1 = min(p0 + p.CHUNK, p.MTOT);
  var c: GemmCtx;
  c.m0 = m0;
  c.n0 = n0;
  for (var i = 0u; i < 4u; i++) {
    let ln = n0 + lid.x + 16u * i;
    c.tx[i] = ln % p.TX;
    c.ty[i] = (ln / p.TX) % p.TY;
    c.kin[i] = min(ln / (p.TX * p.TY), p.KIN - 1u);
  }
  var acc: array<vec4f, 4>;  // acc[j][i]: row m0 + lid.x + 16 i, column n0 + lid.y + 16 j
  gemm_tile(c, p0, p1, lid, &acc);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.x + 16u * i;
    if (m >= p.ROWS) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.y + 16u * j;
      if (n >= p.NCOL) { continue; }
      let ntx = n % p.TX;
      let nrest = n / p.TX; // kin * TY + ty
      P[wg.z * p.PSTRIDE + m * (p.PSTRIDE / p.ROWS) + nrest * p.TXP + ntx] = acc[j][i];
    }
  }
}

// @kernel pack
// Repacks a weight for the conv kernels: out[row, kin', ty, tx'] (rows padded to ROWSP, taps of a
// kernel row padded to TXP), or with CHAN = 1 out[row, kin / 4, ty, tx, kin % 4]. Source element
// (row, kin, ky = KY0 + TSY*ty, kx = KX0 + TSX*tx) of a [ROWS, KIN, KH, KW] weight (KINMAJOR = 0)
// or a [KIN, ROWS, KH, KW] one (KINMAJOR = 1); zero where any index is out of range. The
// divisors of the index (TXP, TY, KINP) are constants of the kernel: llvmpipe divides by a
// uniform value per lane (bench: conv.*.fwd).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> W: {{W_ARRAY}};
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.TOTAL) { return; }
  var row: u32; var kin: u32; var ty: u32; var tx: u32;
  if (p.CHAN == 1u) {
    // i = (((row * KINP/4 + k4) * TY + ty) * TXP + tx) * 4 + c
    let c = i % 4u;
    var r = i / 4u;
    tx = r % {{TXP}}u; r /= {{TXP}}u;
    ty = r % {{TY}}u; r /= {{TY}}u;
    let k4 = r % {{KIN4}}u;
    row = r / {{KIN4}}u;
    kin = k4 * 4u + c;
  } else {
    // i = ((row * KINP + kin) * TY + ty) * TXP + tx
    tx = i % {{TXP}}u;
    var r = i / {{TXP}}u;
    ty = r % {{TY}}u; r /= {{TY}}u;
    kin = r % {{KINP}}u;
    row = r / {{KINP}}u;
  }
  let ky = p.KY0 + p.TSY * ty;
  let kx = p.KX0 + p.TSX * tx;
  let ok = row < p.ROWS && kin < p.KIN && tx < p.TX && ky < p.KH && kx < p.KW;
  var src = ((kin * p.ROWS + row) * p.KH + ky) * p.KW + kx;
  if (p.KINMAJOR == 0u) { src = ((row * p.KIN + kin) * p.KH + ky) * p.KW + kx; }
  out[i] = select(0.0, {{W_SRC}}, ok);
}

// @kernel wsum
// dW[r, kx] = sum over chunks s (in order) of P[s, r, kx] for each kernel row r = (row * KIN + kin)
// * KH + ky, whose KW taps P pads to G vec4s. One invocation per vec4 of P's rows: aligned vec4
// loads and no index divisions (llvmpipe divides per lane, so a thread per weight with four
// divisions was several times slower; bench: conv.*.wgrad). Chunks are added in a fixed order.
{{PARAMS}}  // N4: vec4s of one chunk
@group(0) @binding(0) var<storage, read> P: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> dW: array<{{OUT}}>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.N4) { return; }
  var s = vec4f(0.0);
  for (var c = 0u; c < p.S; c++) { s += P[c * p.N4 + i]; }
{{STORE}}
}

// @kernel bias_grad
// db[c] = sum over (b, position) of G[b, c, position]: one workgroup per channel, a fixed-order
// tree in workgroup memory (deterministic). T is vec4f when a channel's HW values are whole
// vec4s (HW counts T elements), else f32.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> G: {{G_ARRAY}};
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  var s = {{T}}(0.0);
  for (var b = 0u; b < p.B; b++) {
    let base = (b * p.C + c) * p.HW;
    for (var i = li; i < p.HW; i += 64u) { s += {{G_AT}}; }
  }
  part[li] = {{SUM}};
  workgroupBarrier();
  for (var w = 32u; w > 0u; w /= 2u) {
    if (li < w) { part[li] += part[li + w]; }
    workgroupBarrier();
  }
  if (li == 0u) { db[c] = part[0]; }
}
