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
// "smem": the classic 64x64 workgroup tile with 16-deep slices of A and B staged in workgroup
// memory as vec4s, for discrete GPUs.

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
// (b, qy, four qx) of chunk wg.z, UQ groups per iteration (1 today: more measured slower) of a
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
// 64 positions x 64 rows per workgroup of 16x16; each invocation 4 positions x 4 rows (both
// strided by 16); K in slices of 16.
{{PARAMS}}
{{BINDINGS}}
// Slices are stored as vec4s, [k][s] = (positions or rows s, s + 16, s + 32, s + 48): a thread
// reads its 4 positions and its 4 rows with one workgroup load each (2 per 16 FMAs instead of
// 8), and every vec4 is written whole by one invocation.
var<workgroup> As: array<vec4f, 256>;
var<workgroup> Bs: array<vec4f, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = (wg.x + wg.z * nwg.x) * 64u; // position tiles over x and z (> 65535 need z)
  let n0 = wg.y * 64u;
  // This invocation stages slice offset kk of positions m0 + s + 16 i and rows n0 + s + 16 i
  // (consecutive invocations: consecutive positions, so the loads coalesce).
  let s = li % 16u;
  let kk = li / 16u;
  var sb: array<u32, 4>;
  var sqy: array<u32, 4>;
  var sqx: array<u32, 4>;
  var sok: array<bool, 4>;
  for (var i = 0u; i < 4u; i++) {
    let lm = m0 + s + 16u * i;
    sok[i] = lm < p.MTOT;
    let pm = min(lm, p.MTOT - 1u);
    sb[i] = pm / (p.QH * p.QW);
    let lq = pm - sb[i] * (p.QH * p.QW);
    sqy[i] = lq / p.QW;
    sqx[i] = lq - sqy[i] * p.QW;
  }
  var acc: array<vec4f, 4>;  // acc[j][i]: row n0 + lid.y + 16 j, position m0 + lid.x + 16 i
  for (var k0 = 0u; k0 < p.KTOT; k0 += 16u) {
    let k = k0 + kk;
    let kOk = k < p.KTOT;
    let tx = k % p.TX;
    let ty = (k / p.TX) % p.TY;
    let kin = min(k / (p.TX * p.TY), p.KIN - 1u);
    var xv = vec4f(0.0);
    var wv = vec4f(0.0);
    for (var i = 0u; i < 4u; i++) {
      let iy = i32(sqy[i] * p.SY) + {{DIR}} * i32(ty) + p.OFFY;
      let ix = i32(sqx[i] * p.SX) + {{DIR}} * i32(tx) + p.OFFX;
      let ok = sok[i] && kOk && iy >= 0 && iy < i32(p.IH) && ix >= 0 && ix < i32(p.IW);
      let xi = ((sb[i] * p.KIN + kin) * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW
        + u32(clamp(ix, 0, i32(p.IW) - 1));
      xv[i] = select(0.0, X[xi], ok);
      let ln = n0 + s + 16u * i;
      let wi = ((min(ln, p.ROWS - 1u) * p.KINP + kin) * p.TY + ty) * p.TXP + tx;
      wv[i] = select(0.0, Wp[wi], ln < p.ROWS && kOk);
    }
    As[kk * 16u + s] = xv;
    Bs[kk * 16u + s] = wv;
    workgroupBarrier();
    for (var q = 0u; q < 16u; q++) {
      let a = As[q * 16u + lid.x];  // positions m0 + lid.x + 16 i
      let w = Bs[q * 16u + lid.y];  // rows n0 + lid.y + 16 j
      for (var j = 0u; j < 4u; j++) { acc[j] = fma(a, vec4f(w[j]), acc[j]); }
    }
    workgroupBarrier();
  }
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
      Y[((b * p.ROWS + row) * p.OH + oy) * p.OW + ox] = v;
    }
  }
}

// @kernel convw_smem
// Weight gradient: 64 rows x 64 columns (kin, ty, tx) per 16x16 workgroup; chunk wg.z of the
// positions; partial sums go to P[chunk] in the same layout as convw_reg's.
{{PARAMS}}
{{BINDINGS}}
// vec4 slices as in conv_smem: [k][s] = rows (or columns) s, s + 16, s + 32, s + 48.
var<workgroup> As: array<vec4f, 256>;
var<workgroup> Bs: array<vec4f, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wg.x * 64u;
  let n0 = wg.y * 64u;
  let p0 = wg.z * p.CHUNK;
  let p1 = min(p0 + p.CHUNK, p.MTOT);
  // This invocation stages position kk of the slice for rows m0 + s + 16 i of A and columns
  // n0 + s + 16 i = (kin, ty, tx) of B.
  let s = li % 16u;
  let kk = li / 16u;
  var ctx: array<u32, 4>;
  var cty: array<u32, 4>;
  var ckin: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let ln = n0 + s + 16u * i;
    ctx[i] = ln % p.TX;
    cty[i] = (ln / p.TX) % p.TY;
    ckin[i] = min(ln / (p.TX * p.TY), p.KIN - 1u);
  }
  var acc: array<vec4f, 4>;  // acc[j][i]: row m0 + lid.x + 16 i, column n0 + lid.y + 16 j
  for (var k0 = p0; k0 < p1; k0 += 16u) {
    let k = k0 + kk;
    let kOk = k < p1;
    let pk = min(k, p.MTOT - 1u);
    let b = pk / (p.QH * p.QW);
    let q = pk - b * (p.QH * p.QW);
    let qy = q / p.QW;
    let qx = q - qy * p.QW;
    var av = vec4f(0.0);
    var xv = vec4f(0.0);
    for (var i = 0u; i < 4u; i++) {
      let lm = m0 + s + 16u * i;
      av[i] = select(0.0, A[((b * p.ROWS + min(lm, p.ROWS - 1u)) * p.QH + qy) * p.QW + qx], lm < p.ROWS && kOk);
      let iy = i32(qy * p.SY + cty[i]) + p.OFFY;
      let ix = i32(qx * p.SX + ctx[i]) + p.OFFX;
      let ok = n0 + s + 16u * i < p.NCOL && kOk && iy >= 0 && iy < i32(p.IH) && ix >= 0 && ix < i32(p.IW);
      let xi = ((b * p.KIN + ckin[i]) * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW + u32(clamp(ix, 0, i32(p.IW) - 1));
      xv[i] = select(0.0, X[xi], ok);
    }
    As[kk * 16u + s] = av;
    Bs[kk * 16u + s] = xv;
    workgroupBarrier();
    for (var t = 0u; t < 16u; t++) {
      let a = As[t * 16u + lid.x];
      let w = Bs[t * 16u + lid.y];
      for (var j = 0u; j < 4u; j++) { acc[j] = fma(a, vec4f(w[j]), acc[j]); }
    }
    workgroupBarrier();
  }
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
@group(0) @binding(0) var<storage, read> W: array<f32>;
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
  out[i] = select(0.0, W[min(src, arrayLength(&W) - 1u)], ok);
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
@group(0) @binding(0) var<storage, read> G: array<{{T}}>;
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  var s = {{T}}(0.0);
  for (var b = 0u; b < p.B; b++) {
    let base = (b * p.C + c) * p.HW;
    for (var i = li; i < p.HW; i += 64u) { s += G[base + i]; }
  }
  part[li] = {{SUM}};
  workgroupBarrier();
  for (var w = 32u; w > 0u; w /= 2u) {
    if (li < w) { part[li] += part[li + w]; }
    workgroupBarrier();
  }
  if (li == 0u) { db[c] = part[0]; }
}
