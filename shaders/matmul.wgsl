// Batched GEMM: O[z] = epilogue(opA(A[z]) @ opB(B[z])), where opX is X or X transposed.
//
// One tiled template in the tfjs style: a schedule section (`reg` or `smem`) holds the tiles and
// the K loop and touches memory only through these hooks, which a hooks section defines:
//   uniform p with fields M, N, K (the GEMM), zOut (output batches = grid z) and nRed (input
//     batches summed into each output batch: output batch zo sums input batches zo + j * zOut)
//   mm_baseA(z) / mm_baseB(z) / mm_baseO(z) -> u32   offsets of batch z, computed once per batch
//   mm_readA(base, row, k) -> f32                  element (row, k) of opA; row may be >= M
//   mm_readB4(base, k, n) -> vec4<f32>             elements (k, n..n+3) of opB; n+3 may be >= N
//   mm_write4(base, row, n, v)                     applies the epilogue, writes the in-range part
// Reads clamp out-of-range rows/columns instead of branching (those results are never written),
// so full and partial tiles run the same straight-line code. A kernel that only addresses its
// operands differently writes its own hooks and reuses a schedule.
//
// Sections: `matmul_hooks` (hooks for plain strided matrices), `reg`, `smem` (schedules; the
// launcher puts hooks + schedule into one module, after `enable subgroups;` when `reg` shares A
// through subgroups, and `smem` with the workgroup-memory tile of shaders/gemm_tile.wgsl, which
// conv and the code search share), `colsum` (the bias gradient).

// @kernel matmul_hooks
// Row-major batches. Transposes, bias and relu are uniforms (one pipeline serves them all); only
// how B is loaded and the output stored (vec4 or scalar) is compiled in.
// Params: A has aCount batches of aStride elements (batch z reads z % aCount), B likewise; aRow,
// aK: element strides of opA's rows and k (transA swaps them); bK, bCol: element strides of
// opB's k and columns (scalar B loads).
{{PARAMS}}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<{{B_TYPE}}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>; // bound to B when there is no bias
@group(0) @binding(3) var<storage, read_write> O: array<{{O_TYPE}}>;
@group(0) @binding(4) var<uniform> p: Params;

fn mm_baseA(z: u32) -> u32 { return (z % p.aCount) * p.aStride; }
fn mm_baseB(z: u32) -> u32 { return (z % p.bCount) * p.bStride; }
fn mm_baseO(z: u32) -> u32 { return z * p.M * p.N; }

fn mm_readA(base: u32, row: u32, k: u32) -> f32 {
  return A[base + min(row, p.M - 1u) * p.aRow + k * p.aK];
}

fn mm_readB4(base: u32, k: u32, n: u32) -> vec4<f32> {
  {{B_READ4}}
}

fn mm_epilogue(n: u32, v: vec4<f32>) -> vec4<f32> {
  var r = v;
  if (p.hasBias != 0u) {
    let l = p.N - 1u;
    r += vec4<f32>(bias[min(n, l)], bias[min(n + 1u, l)], bias[min(n + 2u, l)], bias[min(n + 3u, l)]);
  }
  if (p.relu != 0u) { r = max(r, vec4<f32>(0.0)); }
  return r;
}

fn mm_write4(base: u32, row: u32, n: u32, v: vec4<f32>) {
  if (row >= p.M) { return; }
  let r = mm_epilogue(n, v);
  let i = base + row * p.N + n;
  {{WRITE4}}
}

// @kernel reg
// Register tiles, no workgroup memory and no barriers: the schedule for CPU Vulkan drivers
// (lavapipe), where every storage-buffer load costs a per-lane loop of branches but arithmetic is
// vectorised. A workgroup is one subgroup of 8 lanes computing {{TM}} rows x {{TN8}} columns; each
// lane owns {{TN}} columns (vec4 groups interleaved across lanes, so the subgroup reads adjacent
// vec4s). With subgroups, the {{TM}} A values of a k step are loaded {{TM}}/8 per lane and shared
// by subgroupBroadcast; without, every lane loads all of them. The k step is unrolled (generated
// by engine/matmul.ts); the stores are a loop, which keeps the module small enough to compile fast.
const TM = {{TM}}u;
const TN4 = {{TN4}}u;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u{{SG_BUILTIN}}) {
  let row0 = wg.y * TM;
  let n0 = wg.x * (32u * TN4) + lid.x * 4u;
  var acc: array<vec4<f32>, {{TM_TN4}}>; // acc[i * TN4 + j]: row row0 + i, columns n0 + 32 j ..
  for (var j = 0u; j < p.nRed; j++) {
    let z = wg.z + j * p.zOut;
    let aBase = mm_baseA(z);
    let bBase = mm_baseB(z);
    for (var k = 0u; k < p.K; k++) {
{{REG_STEP}}
    }
  }
  let oBase = mm_baseO(wg.z);
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN4; j++) {
      mm_write4(oBase, row0 + i, n0 + 32u * j, acc[i * TN4 + j]);
    }
  }
}

// @kernel smem
// Workgroup-memory tiles (shaders/gemm_tile.wgsl, appended by the launcher): 64x64 outputs per
// workgroup of 16x16 threads, each thread 4 rows (strided by 16) x 4 adjacent columns. The usual
// schedule for a discrete GPU. A slot of A is rows s + 16 i, staged with consecutive threads
// along k; a slot of B is the four adjacent columns 4 s .. 4 s + 3, one vec4 read of B.
const GEMM_A_K_FAST = true;
const GEMM_B_K_FAST = false;
struct GemmCtx { aBase: u32, bBase: u32, row0: u32, n0: u32 }

fn gemm_loadA(c: GemmCtx, k: u32, s: u32) -> vec4f {
  return vec4f(mm_readA(c.aBase, c.row0 + s, k), mm_readA(c.aBase, c.row0 + s + 16u, k),
               mm_readA(c.aBase, c.row0 + s + 32u, k), mm_readA(c.aBase, c.row0 + s + 48u, k));
}

fn gemm_loadB(c: GemmCtx, k: u32, s: u32) -> vec4f { return mm_readB4(c.bBase, k, c.n0 + 4u * s); }

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  var acc: array<vec4<f32>, 4>;
  for (var j = 0u; j < p.nRed; j++) {
    let z = wg.z + j * p.zOut;
    gemm_tile(GemmCtx(mm_baseA(z), mm_baseB(z), row0, n0), 0u, p.K, lid, &acc);
  }
  let oBase = mm_baseO(wg.z);
  for (var i = 0u; i < 4u; i++) {
    mm_write4(oBase, row0 + lid.y + 16u * i, n0 + 4u * lid.x, acc[i]);
  }
}

// @kernel colsum
// Partial column sums of a [rows, N] matrix: out[c, n] = sum of rows c*CHUNK .. (c+1)*CHUNK-1.
// Run repeatedly until one row is left (the bias gradient).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> cp: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= cp.N) { return; }
  let r0 = gid.y * cp.chunk;
  let r1 = min(r0 + cp.chunk, cp.rows);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += X[r * cp.N + n]; }
  Y[gid.y * cp.N + n] = s;
}
