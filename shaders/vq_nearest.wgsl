// Nearest codebook row for each row of z (the VQ-VAE quantiser's argmin), fused: the squared
// distance ||z||^2 - 2 z.e + ||e||^2 is ranked by its z-dependent part d = ||e||^2 - 2 z.e with
// a running (min, index) per row, so the N x K distance matrix never exists. Codes are visited
// in ascending order and replace the running minimum only when strictly smaller, so exact ties
// (duplicate codebook rows give bit-identical d) go to the lowest index.
// Two schedules:
// * nearest_reg: no workgroup memory, no barriers (best on CPU Vulkan such as lavapipe). Each
//   invocation owns RM rows of z and loops over every code in steps of RN, keeping an RM x RN
//   block of dot products in registers. With subgroups of 8, the 8 lanes load 8 neighbouring
//   codes at once and share them by subgroupBroadcast (one load where there were 8).
// * nearest_smem: a GPU GEMM tile. A workgroup owns TM rows and walks the codebook in tiles of
//   TK codes, staging z and e slices of BD dims in workgroup memory; each thread keeps 4 rows x
//   4 codes, then the 16 threads that share a row merge their minima (lexicographic on (d, k)).

// The largest finite f32: the starting minimum (a distance that overflows to inf never wins).
const BIG = 0x1.fffffep+127f;

// @kernel norms
// ||e_k||^2 for every codebook row, computed once per call of the nearest kernels.
const D = {{D}}u;
{{PARAMS}}
@group(0) @binding(0) var<storage, read> e: array<f32>;
@group(0) @binding(1) var<storage, read_write> norms: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = gid.x + gid.y * nwg.x * 64u;
  if (k >= p.k) { return; }
  var s = 0.0;
  for (var d = 0u; d < D; d++) {
    let v = e[k * D + d];
    s = fma(v, v, s);
  }
  norms[k] = s;
}

// @kernel nearest_reg
// The RM x RN block is unrolled by the launcher (engine/vq.ts, regBody): lavapipe keeps named
// scalars in registers (or at least in fixed stack slots), while an array indexed in a loop it
// does not unroll becomes per-lane gathers. Rows and codes are read V dims at a time (vec4f when
// D % 4 == 0) and each accumulator is assigned once per iteration of the d loop, as a chain of
// UN x V fmas: llvmpipe turns every assignment inside a loop into a load, a masked blend and a
// store, so V = 4 and UN = 2 cut that overhead per multiply-add by 8. For rows up to 64 wide
// (with subgroups) UN = DV: the d loop runs once, so every index into zr is a constant (a zr
// index that varies in a loop is a per-lane gather there) and the tile is 12 rows x 8 codes.
// CODES binds the codebook as storage, or as a uniform array when it fits one binding (a
// per-lane uniform load is one branch-free gather, a storage load a bounds-checked scalar load
// per lane). The unrolled statements fill the slots:
//   DECL_BEST: var b{r} = BIG; var i{r} = 0u;    (running minimum of row r)
//   CODE_OFFSETS: let eo{j} = min(k0 + j, p.k - 1u) * DV;  (tail codes repeat the last one)
//     or, with subgroups of 8 (lane = subgroup lane), the lane's code of each group of 8:
//     let eo{h} = min(k0 + 8 h + lane, p.k - 1u) * DV;
//   DECL_ACC: var a{r}_{j} = 0.0;
//   LOADS, for u < UN: let e{j}_{u} = e[eo{j} + d + u]; let z{r}_{u} = zr[(d + u) * RM + r];
//     or with subgroups: let ev{h}_{u} = e[eo{h} + d + u]; let e{j}_{u} = subgroupBroadcast(ev{j / 8}_{u}, j % 8);
//     (the 8 lanes load 8 codes at once and share them: one load where there were 8)
//   FMAS: a{r}_{j} = fma(z{r}_1.w, e{j}_1.w, ... fma(z{r}_0.x, e{j}_0.x, a{r}_{j}));  (ascending d)
//   UPDATE: the codes' ||e||^2 (shared by broadcast too), then per code j < p.k, per row r:
//     dk = ||e||^2 - 2 a{r}_{j}; strictly smaller wins.
//   STORES: finish(row0 + r, r, b{r}, i{r}, &zr);
const D = {{D}}u;    // row width, baked in so the loops over it have constant bounds
const DV = {{DV}}u;  // loads per row: D / 4 vec4f, or D f32
const RM = {{RM}}u;  // z rows per invocation
const RN = {{RN}}u;  // codes per step of the codebook loop
const UN = {{UN}}u;  // loads per row and code per iteration of the d loop (1, 2 or DV)
const WG = 8u;       // one lavapipe SIMD group: small workgroups spread over the CPU threads
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<{{VT}}>;
@group(0) @binding(1) {{CODES}}
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> dist: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn finish(row: u32, r: u32, best: f32, besti: u32, zr: ptr<function, array<{{VT}}, RM * DV>>) {
  if (row >= p.n) { return; }
  idx[row] = besti;
  if (p.writeDist != 0u) {
    var zz = 0.0;
    for (var d = 0u; d < DV; d++) { let v = (*zr)[d * RM + r]; zz = {{ZZ}}; }
    dist[row] = max(zz + best, 0.0);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u{{SG_PARAM}}) {
  let row0 = (gid.x + gid.y * nwg.x * WG) * RM;
  // This invocation's rows, copied once into a private array [DV][RM] (rows past the end repeat
  // the last): loads from the stack there cost a fraction of per-lane storage loads.
  var zr: array<{{VT}}, RM * DV>;
  for (var r = 0u; r < RM; r++) {
    let o = min(row0 + r, p.n - 1u) * DV;
    for (var d = 0u; d < DV; d++) { zr[d * RM + r] = z[o + d]; }
  }
{{DECL_BEST}}
  for (var k0 = 0u; k0 < p.k; k0 += RN) {
{{CODE_OFFSETS}}
{{DECL_ACC}}
    for (var d = 0u; d < DV; d += UN) {
{{LOADS}}
{{FMAS}}
    }
{{UPDATE}}
  }
{{STORES}}
}

// @kernel nearest_smem
const D = {{D}}u;
const TM = 64u;   // rows per workgroup
const TK = 64u;   // codes per codebook tile
const BD = 16u;   // dims per staged slice
const NSLICE = (D + BD - 1u) / BD;
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> dist: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Slices stored dim-major as vec4s: zs[d][s] = rows s, s + 16, s + 32, s + 48 and es[d][s] =
// codes s, s + 16, ... of the tile, so a thread's 4 rows and 4 codes are one load each, and each
// vec4 is written whole by one invocation.
var<workgroup> zs: array<vec4f, BD * TM / 4u>;
var<workgroup> es: array<vec4f, BD * TK / 4u>;
var<workgroup> redd: array<f32, TM * 16u>;
var<workgroup> redi: array<u32, TM * 16u>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let row0 = (wid.x + wid.y * nwg.x) * TM;
  let tr = t / 16u;  // this thread's rows: row0 + tr + 16 i
  let tc = t % 16u;  // this thread's codes within a tile: tc + 16 j
  // Loader: dim ld of the slice for rows (codes) ls + 16 c; 16 consecutive threads read 16
  // consecutive dims of one row.
  let ld = t % 16u;
  let ls = t / 16u;
  var best = vec4f(BIG);
  var besti = vec4u(0u);

  for (var k0 = 0u; k0 < p.k; k0 += TK) {
    var acc: array<vec4f, 4>;  // acc[i][j]: row tr + 16 i, code tc + 16 j
    for (var i = 0u; i < 4u; i++) { acc[i] = vec4f(0.0); }
    for (var s = 0u; s < NSLICE; s++) {
      let d = s * BD + ld;
      var zv = vec4f(0.0);
      var ev = vec4f(0.0);
      for (var c = 0u; c < 4u; c++) {
        let row = row0 + ls + 16u * c;
        let code = k0 + ls + 16u * c;
        if (d < D && row < p.n) { zv[c] = z[row * D + d]; }
        if (d < D && code < p.k) { ev[c] = e[code * D + d]; }
      }
      zs[ld * 16u + ls] = zv;
      es[ld * 16u + ls] = ev;
      workgroupBarrier();
      for (var dd = 0u; dd < BD; dd++) {
        let a = zs[dd * 16u + tr];
        let b = es[dd * 16u + tc];
        acc[0] = fma(vec4f(a.x), b, acc[0]);
        acc[1] = fma(vec4f(a.y), b, acc[1]);
        acc[2] = fma(vec4f(a.z), b, acc[2]);
        acc[3] = fma(vec4f(a.w), b, acc[3]);
      }
      workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
      let k = k0 + tc + 16u * j;
      if (k < p.k) {
        let nk = norms[k];
        for (var i = 0u; i < 4u; i++) {
          let dk = nk - 2.0 * acc[i][j];
          if (dk < best[i]) { best[i] = dk; besti[i] = k; }
        }
      }
    }
  }

  // Merge the 16 partial minima of each row; ties go to the lower code index.
  for (var i = 0u; i < 4u; i++) {
    redd[(tr + 16u * i) * 16u + tc] = best[i];
    redi[(tr + 16u * i) * 16u + tc] = besti[i];
  }
  workgroupBarrier();
  if (t < TM) {
    var bd = redd[t * 16u];
    var bi = redi[t * 16u];
    for (var c = 1u; c < 16u; c++) {
      let dd = redd[t * 16u + c];
      let di = redi[t * 16u + c];
      if (dd < bd || (dd == bd && di < bi)) { bd = dd; bi = di; }
    }
    let row = row0 + t;
    if (row < p.n) {
      idx[row] = bi;
      if (p.writeDist != 0u) {
        var zz = 0.0;
        for (var d = 0u; d < D; d++) { let v = z[row * D + d]; zz = fma(v, v, zz); }
        dist[row] = max(zz + bd, 0.0);
      }
    }
  }
}
