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
// * nearest_smem: the workgroup-memory GEMM tile shared with matmul and conv. A workgroup owns
//   TM rows and walks the codebook in tiles of TK codes; each thread keeps 4 rows x 4 codes,
//   then the 16 threads that share a row merge their minima (lexicographic on (d, k)).

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
@group(0) @binding(0) var<storage, read> z: {{Z_ARRAY}};
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
    for (var d = 0u; d < DV; d++) { zr[d * RM + r] = {{Z_AT}}; }
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
// The GEMM tile of shaders/gemm_tile.wgsl (appended by the launcher) with A = rows of z (TM per
// workgroup, A-slot s: rows row0 + s + 16 i) and B = codes (a codebook tile of TK, B-slot s:
// codes k0 + s + 16 i), k = the dim; both staged with 16 consecutive threads reading 16
// consecutive dims of one row. Each thread keeps 4 rows x 4 codes; after the last codebook tile
// the 16 threads that share a row merge their minima (lexicographic on (d, k)).
const D = {{D}}u;
const TM = 64u;   // rows per workgroup
const TK = 64u;   // codes per codebook tile
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: {{Z_ARRAY}};
@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> dist: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> redd: array<f32, TM * 16u>;
var<workgroup> redi: array<u32, TM * 16u>;

const GEMM_A_K_FAST = true;
const GEMM_B_K_FAST = true;
struct GemmCtx { row0: u32, k0: u32 }

fn gemm_loadA(c: GemmCtx, d: u32, s: u32) -> vec4f {
  var zv = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let row = c.row0 + s + 16u * i;
    if (row < p.n) { zv[i] = {{Z_AT}}; }
  }
  return zv;
}

fn gemm_loadB(c: GemmCtx, d: u32, s: u32) -> vec4f {
  var ev = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let code = c.k0 + s + 16u * i;
    if (code < p.k) { ev[i] = e[code * D + d]; }
  }
  return ev;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) t: u32) {
  let row0 = (wid.x + wid.y * nwg.x) * TM;
  let tr = lid.y;  // this thread's rows: row0 + tr + 16 i
  let tc = lid.x;  // this thread's codes within a tile: tc + 16 j
  var best = vec4f(BIG);
  var besti = vec4u(0u);

  for (var k0 = 0u; k0 < p.k; k0 += TK) {
    // acc[i][j]: row tr + 16 i, code tc + 16 j. Zeroed explicitly: without an initializer the
    // previous codebook tile's sums were kept (seen with Dawn on lavapipe).
    var acc = array<vec4f, 4>();
    gemm_tile(GemmCtx(row0, k0), 0u, D, lid, &acc);
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
        for (var d = 0u; d < D; d++) { let v = {{Z_AT}}; zz = fma(v, v, zz); }
        dist[row] = max(zz + bd, 0.0);
      }
    }
  }
}
