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
// vectorised but (Mesa 25.0) every storage load inside a loop becomes a per-lane, bounds-checked
// scalar load per component (~6-8 instructions each), so loads per FMA decide the speed:
//   * weights (conv) or A rows (wgrad): lane l loads rows l, l + 8 of the subgroup's 16 and
//     subgroupBroadcast hands each value to all 8 lanes (one load per subgroup, not per lane);
//   * each lane owns 8 adjacent output positions (conv) or 4 column groups (wgrad), and loads the
//     input window they share once, aligned vec4s where whole;
//   * each accumulator is assigned once per loop iteration (every assignment inside a loop is a
//     masked blend there).
// Measured in llvmpipe's JIT output: ~8 loop instructions per 8-wide FMA, against ~11-13 with one
// lane per 4 positions or per column group. "smem": the classic 64x64 workgroup tile with
// 16-deep slices of A and B staged in workgroup memory, for discrete GPUs.

// @kernel conv_reg
// One subgroup: R GEMM rows (output channels) x 8 lanes x PJ (4 or 8) adjacent positions per lane.
struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, NG: u32,
  OH: u32, OW: u32, OSY: u32, OSX: u32,
  OPY: u32, OPX: u32, SY: u32, KSTEPS: u32,
  OFFY: i32, OFFX: i32, NPOS: u32, KSTRIDE: u32,
  KITERS: u32, TY: u32, HAS_BIAS: u32, RELU: u32,
}
{{BINDINGS}}

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
// (b, qy, four qx) of chunk wg.z, UQ groups per iteration of a single flat loop (a nested loop
// over qx would run only a couple of times per row on small maps and pay its setup each time).
struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, NGI: u32,
  TY: u32, NCG: u32, SY: u32, CHUNK: u32,
  OFFY: i32, OFFX: i32, KITERS: u32, _pad: u32,
}
{{BINDINGS}}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
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

// @kernel conv_smem
// 64 positions x 64 rows per workgroup of 16x16; each invocation 4 adjacent positions x 4
// adjacent rows; K in slices of 16.
struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, MTOT: u32,
  OH: u32, OW: u32, OSY: u32, OSX: u32,
  OPY: u32, OPX: u32, SY: u32, SX: u32,
  OFFY: i32, OFFX: i32, TY: u32, TX: u32,
  KTOT: u32, TXP: u32, KINP: u32, _pad: u32,
}
{{BINDINGS}}
// Slices are stored [k][m / 4] and [k][n / 4] as vec4s: a thread's 4 adjacent positions and 4
// adjacent rows are one workgroup load each (2 loads per 16 FMAs instead of 8).
var<workgroup> As: array<vec4f, 256>;
var<workgroup> Bs: array<vec4f, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = (wg.x + wg.z * nwg.x) * 64u; // position tiles over x and z (> 65535 need z)
  let n0 = wg.y * 64u;
  // The position and the row this invocation stages into As and Bs (fixed over the K loop).
  let lm = m0 + li % 64u;
  let mOk = lm < p.MTOT;
  let pm = min(lm, p.MTOT - 1u);
  let lb = pm / (p.QH * p.QW);
  let lq = pm - lb * (p.QH * p.QW);
  let lqy = lq / p.QW;
  let lqx = lq - lqy * p.QW;
  let ln = n0 + li % 64u;
  let nOk = ln < p.ROWS;
  var acc: array<vec4f, 4>;  // acc[j][i]: row n0 + 4 lid.y + j, position m0 + 4 lid.x + i
  for (var k0 = 0u; k0 < p.KTOT; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let kk = li / 64u + 4u * i;
      let k = k0 + kk;
      let tx = k % p.TX;
      let ty = (k / p.TX) % p.TY;
      let kin = k / (p.TX * p.TY);
      let iy = i32(lqy * p.SY) + {{DIR}} * i32(ty) + p.OFFY;
      let ix = i32(lqx * p.SX) + {{DIR}} * i32(tx) + p.OFFX;
      let ok = mOk && k < p.KTOT && iy >= 0 && iy < i32(p.IH) && ix >= 0 && ix < i32(p.IW);
      let xi = ((lb * p.KIN + min(kin, p.KIN - 1u)) * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW
        + u32(clamp(ix, 0, i32(p.IW) - 1));
      As[kk * 16u + (li % 64u) / 4u][li % 4u] = select(0.0, X[xi], ok);
      let wi = ((min(ln, p.ROWS - 1u) * p.KINP + min(kin, p.KIN - 1u)) * p.TY + ty) * p.TXP + tx;
      Bs[kk * 16u + (li % 64u) / 4u][li % 4u] = select(0.0, Wp[wi], nOk && k < p.KTOT);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As[kk * 16u + lid.x];  // positions m0 + 4 lid.x + i
      let w = Bs[kk * 16u + lid.y];  // rows n0 + 4 lid.y + j
      for (var j = 0u; j < 4u; j++) { acc[j] = fma(a, vec4f(w[j]), acc[j]); }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + 4u * lid.x + i;
    if (m >= p.MTOT) { continue; }
    let b = m / (p.QH * p.QW);
    let q = m - b * (p.QH * p.QW);
    let qy = q / p.QW;
    let qx = q - qy * p.QW;
    let oy = qy * p.OSY + p.OPY;
    let ox = qx * p.OSX + p.OPX;
    for (var j = 0u; j < 4u; j++) {
      let row = n0 + 4u * lid.y + j;
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
struct Params {
  B: u32, KIN: u32, IH: u32, IW: u32,
  ROWS: u32, QH: u32, QW: u32, NCOL: u32,
  TY: u32, TX: u32, SY: u32, SX: u32,
  OFFY: i32, OFFX: i32, CHUNK: u32, MTOT: u32,
  TXP: u32, PSTRIDE: u32, _p0: u32, _p1: u32,
}
{{BINDINGS}}
var<workgroup> As: array<vec4f, 256>; // [k][m / 4]
var<workgroup> Bs: array<vec4f, 256>; // [k][n / 4]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wg.x * 64u;
  let n0 = wg.y * 64u;
  let p0 = wg.z * p.CHUNK;
  let p1 = min(p0 + p.CHUNK, p.MTOT);
  // The row of A and the column (kin, ty, tx) of B this invocation stages.
  let lm = m0 + li % 64u;
  let mOk = lm < p.ROWS;
  let ln = n0 + li % 64u;
  let nOk = ln < p.NCOL;
  let tx = ln % p.TX;
  let ty = (ln / p.TX) % p.TY;
  let kin = min(ln / (p.TX * p.TY), p.KIN - 1u);
  var acc: array<vec4f, 4>;  // acc[j][i]: row m0 + 4 lid.x + i, column n0 + 4 lid.y + j
  for (var k0 = p0; k0 < p1; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let kk = li / 64u + 4u * i;
      let k = k0 + kk;
      let kOk = k < p1;
      let pk = min(k, p.MTOT - 1u);
      let b = pk / (p.QH * p.QW);
      let q = pk - b * (p.QH * p.QW);
      let qy = q / p.QW;
      let qx = q - qy * p.QW;
      As[kk * 16u + (li % 64u) / 4u][li % 4u] = select(0.0, A[((b * p.ROWS + min(lm, p.ROWS - 1u)) * p.QH + qy) * p.QW + qx], mOk && kOk);
      let iy = i32(qy * p.SY + ty) + p.OFFY;
      let ix = i32(qx * p.SX + tx) + p.OFFX;
      let ok = nOk && kOk && iy >= 0 && iy < i32(p.IH) && ix >= 0 && ix < i32(p.IW);
      let xi = ((b * p.KIN + kin) * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW + u32(clamp(ix, 0, i32(p.IW) - 1));
      Bs[kk * 16u + (li % 64u) / 4u][li % 4u] = select(0.0, X[xi], ok);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As[kk * 16u + lid.x];
      let w = Bs[kk * 16u + lid.y];
      for (var j = 0u; j < 4u; j++) { acc[j] = fma(a, vec4f(w[j]), acc[j]); }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + 4u * lid.x + i;
    if (m >= p.ROWS) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + 4u * lid.y + j;
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
// or a [KIN, ROWS, KH, KW] one (KINMAJOR = 1); zero where any index is out of range.
struct Params {
  ROWS: u32, ROWSP: u32, KIN: u32, KINP: u32,
  TY: u32, TX: u32, TXP: u32, KH: u32,
  KW: u32, KY0: u32, KX0: u32, TSY: u32,
  TSX: u32, KINMAJOR: u32, CHAN: u32, TOTAL: u32,
}
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
    tx = r % p.TXP; r /= p.TXP;
    ty = r % p.TY; r /= p.TY;
    let k4 = r % (p.KINP / 4u);
    row = r / (p.KINP / 4u);
    kin = k4 * 4u + c;
  } else {
    // i = ((row * KINP + kin) * TY + ty) * TXP + tx
    tx = i % p.TXP;
    var r = i / p.TXP;
    ty = r % p.TY; r /= p.TY;
    kin = r % p.KINP;
    row = r / p.KINP;
  }
  let ky = p.KY0 + p.TSY * ty;
  let kx = p.KX0 + p.TSX * tx;
  let ok = row < p.ROWS && kin < p.KIN && tx < p.TX && ky < p.KH && kx < p.KW;
  var src = ((kin * p.ROWS + row) * p.KH + ky) * p.KW + kx;
  if (p.KINMAJOR == 0u) { src = ((row * p.KIN + kin) * p.KH + ky) * p.KW + kx; }
  out[i] = select(0.0, W[min(src, arrayLength(&W) - 1u)], ok);
}

// @kernel wsum
// dW[row, kin, ky, kx] = sum over chunks s (in order) of P[s, row, (kin * TY + ky) * TXP + kx].
struct Params { ROWS: u32, KIN: u32, KH: u32, KW: u32, TXP: u32, S: u32, PSTRIDE: u32, TOTAL: u32 }
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> dW: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.TOTAL) { return; }
  let kx = i % p.KW;
  let ky = (i / p.KW) % p.KH;
  let kin = (i / (p.KW * p.KH)) % p.KIN;
  let row = i / (p.KW * p.KH * p.KIN);
  let col = row * (p.PSTRIDE / p.ROWS) + (kin * p.KH + ky) * p.TXP + kx;
  var s = 0.0;
  for (var c = 0u; c < p.S; c++) { s += P[c * p.PSTRIDE + col]; }
  dW[i] = s;
}

// @kernel bias_grad
// db[c] = sum over (b, position) of G[b, c, position]: one workgroup per channel, a fixed-order
// tree in workgroup memory (deterministic). T is vec4f when a channel's HW values are whole
// vec4s (HW counts T elements), else f32.
struct Params { B: u32, C: u32, HW: u32, _pad: u32 }
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

// @kernel relu_grad
// g * (y > 0): the gradient through a ReLU fused into a conv's epilogue, from its output y.
struct Params { n: u32, _pad: u32 }
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { out[i] = select(0.0, g[i], y[i] > 0.0); }
}
