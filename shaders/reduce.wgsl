// Reduction kernels. A reduction over one contiguous run of axes sees its input as
// [outer, len, inner] and reduces the middle dim; each pass writes [outer, chunks, inner]
// partial results and the launcher repeats passes until one chunk is left. Every sum is a
// fixed-order tree or short sequential run (no atomics): deterministic and accurate.
//   sum_cols:   one invocation sums up to 128 rows of one column; a long axis takes several
//               passes (4M elements to one: 4 passes). No workgroup tree in shared memory:
//               barriers are expensive on llvmpipe.
//   arg_cols:   the same for max/min with the index (lowest index wins ties).
//   max_grad:   scatters g to the recorded argmax position (no atomics: one output per thread).
//   broadcast:  y[i] = x[strided offset of i] * scale (backward of sum/mean, and expand).

// @kernel sum_cols
// Invocation c of a column takes rows c, c + chunks, c + 2 chunks, ...: neighbouring
// invocations read neighbouring words even when inner == 1 (coalesced on a GPU, vector loads
// on a CPU), and each adds at most ~64 values. IN and OUT: f32, or f16 for an f16 sum (the
// additions stay f32; an f16 result is rounded once, when the last pass writes it, and the
// earlier passes of a long f16 sum read f16 and write f32 partial sums).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<{{IN}}>;
@group(0) @binding(1) var<storage, read_write> Y: array<{{OUT}}>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.outer * p.chunks * p.inner) { return; }
  let k = i % p.inner;
  let t = i / p.inner;
  let c = t % p.chunks;
  var off = ((t / p.chunks) * p.len + c) * p.inner + k;
  let stride = p.chunks * p.inner;
  // two accumulators halve the sequential rounding chain
  var acc0 = 0.0;
  var acc1 = 0.0;
  var r = c;
  for (; r + p.chunks < p.len; r += 2u * p.chunks) {
    acc0 += f32(X[off]);
    acc1 += f32(X[off + stride]);
    off += 2u * stride;
  }
  if (r < p.len) { acc0 += f32(X[off]); }
  Y[i] = {{OUT}}((acc0 + acc1) * p.scale);
}

// @kernel arg_cols
// Rows are split between invocations as in sum_cols. X holds values; XI the indices found by
// an earlier pass (unused, and bound to any buffer, when p.first == 1: the index is then the
// row itself). Equal values keep the lower index, so the lowest index wins ties overall.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> XI: array<u32>;
@group(0) @binding(2) var<storage, read_write> V: array<f32>;
@group(0) @binding(3) var<storage, read_write> VI: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

fn indexAt(r: u32, off: u32) -> u32 {
  if (p.first == 1u) { return r; }
  return XI[off];
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.outer * p.chunks * p.inner) { return; }
  let k = i % p.inner;
  let t = i / p.inner;
  let c = t % p.chunks;
  var off = ((t / p.chunks) * p.len + c) * p.inner + k;
  let stride = p.chunks * p.inner;
  var best = X[off];
  var bestIdx = indexAt(c, off);
  for (var r = c + p.chunks; r < p.len; r += p.chunks) {
    off += stride;
    let v = X[off];
    let id = indexAt(r, off);
    if (v {{CMP}} best || (v == best && id < bestIdx)) {
      best = v;
      bestIdx = id;
    }
  }
  V[i] = best;
  VI[i] = bestIdx;
}

// @kernel max_grad
// x was [outer, len, inner]; g and idx are [outer, inner].
{{PARAMS}}
@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> IDX: array<u32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let k = i % p.inner;
  let t = i / p.inner;
  let j = (t / p.len) * p.inner + k;
  Y[i] = select(0.0, G[j], IDX[j] == t % p.len);
}

// @kernel broadcast
// Dims and strides of the collapsed output shape sit in two vec4u each (a uniform array's
// stride must be 16 bytes); RANK is a constant so the loops unroll. S: f32, or f16 (the product
// in f32, rounded once).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<{{S}}>;
@group(0) @binding(1) var<storage, read_write> Y: array<{{S}}>;
@group(0) @binding(2) var<uniform> p: Params;

// Offset in x of output element i, and i's coordinate along the last dim.
fn offsetOf(i: u32) -> vec2u {
  var rem = i;
  var off = 0u;
  var c0 = 0u;
  for (var d = {{RANK}}u; d > 0u; d--) {
    let k = d - 1u;
    let dim = p.shape[k / 4u][k % 4u];
    let c = rem % dim;
    if (d == {{RANK}}u) { c0 = c; }
    off += c * p.sx[k / 4u][k % 4u];
    rem = rem / dim;
  }
  return vec2u(off, c0);
}

// Each invocation writes PER consecutive outputs, stepping along the last dim (integer
// division has no SIMD form on CPUs).
const PER = {{PER}}u;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = offsetOf(i0);
  let last = {{RANK}}u - 1u;
  let step = p.sx[last / 4u][last % 4u];
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    Y[i] = {{S}}(f32(X[o.x]) * p.scale);
    if (o.y + 1u < dim0) {
      o = vec2u(o.x + step, o.y + 1u);
    } else {
      o = offsetOf(i + 1u);
    }
  }
}

