// Shape and indexing kernels: strided copies (permute, slice, concat), the slice gradient
// (pad), gather and its deterministic backward (a stable counting sort of the indices, sums
// over fixed segments of each row's bucket, then per-row sums of those: no float atomics).
// Every kernel moves raw 32-bit words, so one pipeline serves f32, i32 and u32 tensors.
// The strided kernels' dim count is baked in (RANK placeholder): a constant trip count lets
// the compiler unroll the index arithmetic and read the uniform's dims at constant offsets.
// 1-D grids may be split over x and y (grid1d); `lin` undoes that split.

// Positions per segment in gather's backward (GATHER_SEGMENT in engine/shape.ts).
const SEG = 256u;

fn lin(gid: vec3u, nwg: vec3u, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

// Clamps an index into [0, size): out-of-range indices never read or write out of bounds.
// Negative i32 indices go to 0, too-large ones to size-1.
fn clampIndex(raw: u32, size: u32, signed: u32) -> u32 {
  if (signed != 0u && bitcast<i32>(raw) < 0) { return 0u; }
  return min(raw, size - 1u);
}

// @kernel copy
// out (contiguous) <- src at strided addresses: permute, slice. ELEM: u32 (any 32-bit dtype), or
// f16 (permute of f16 tensors; the module then starts with `enable f16;`).
// Params: n: elements to visit; base: word offset added to every strided address; shape: iteration
// shape (row-major, last dim fastest); stride: strides (in words) of the strided side, per
// iteration dim.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> src: array<{{ELEM}}>;
@group(0) @binding(1) var<storage, read_write> out: array<{{ELEM}}>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  // strided offset of element i; the uniform is indexed in place (copying its arrays into a
  // function argument would put them in slow per-thread memory)
  var rem = i;
  var off = p.base;
  for (var k = {{RANK}} - 1; k >= 0; k--) {
    let d = p.shape[k / 4][k % 4];
    off += (rem % d) * p.stride[k / 4][k % 4];
    rem /= d;
  }
  out[i] = src[off];
}

// @kernel transpose
// A permute whose innermost output dim is not contiguous in the source, as a batch of 2-D
// transposes through a 32x33 shared tile (both the reads and the writes are coalesced).
// Output dim K (source stride 1, size sizeK) and the last output dim L (size sizeL, source
// stride strideL) form the tile; the other dims are the batch, one workgroup per
// (batch, tile) over a 1-D (possibly x/y split) grid.
// Params: outStrideK: output stride of dim K; strideL: source stride of dim L; nWork: batches *
// tilesK * tilesL; base: source offset added to every read; bout: output strides of the batch
// dims; bsrc: source strides of the batch dims.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> tile: array<array<u32, 33>, 32>;  // 33: no bank conflicts on the column reads

@compute @workgroup_size(32, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.nWork) { return; }  // uniform per workgroup, so no barrier is skipped unevenly
  let perBatch = p.tilesK * p.tilesL;
  var rem = w / perBatch;
  let tl = w % perBatch;
  let k0 = (tl / p.tilesL) * 32u;
  let l0 = (tl % p.tilesL) * 32u;
  var outBase = 0u;
  var srcBase = p.base;
  for (var k = {{RANK}} - 1; k >= 0; k--) {
    let d = p.bshape[k / 4][k % 4];
    let c = rem % d;
    rem /= d;
    outBase += c * p.bout[k / 4][k % 4];
    srcBase += c * p.bsrc[k / 4][k % 4];
  }
  // read: threads along K (source stride 1)
  let kk = k0 + lid.x;
  for (var q = 0u; q < 32u; q += 8u) {
    let ll = l0 + lid.y + q;
    if (kk < p.sizeK && ll < p.sizeL) { tile[lid.y + q][lid.x] = src[srcBase + kk + ll * p.strideL]; }
  }
  workgroupBarrier();
  // write: threads along L (output stride 1)
  let l = l0 + lid.x;
  for (var q = 0u; q < 32u; q += 8u) {
    let k = k0 + lid.y + q;
    if (k < p.sizeK && l < p.sizeL) { out[outBase + k * p.outStrideK + l] = tile[lid.x][lid.y + q]; }
  }
}

// @kernel scatter
// src (contiguous) -> out at strided addresses: one input's block of a concat.
// Params: n: elements to visit; base: word offset added to every strided address; shape: iteration
// shape (row-major, last dim fastest); stride: strides (in words) of the strided side, per
// iteration dim.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  var rem = i;
  var off = p.base;
  for (var k = {{RANK}} - 1; k >= 0; k--) {
    let d = p.shape[k / 4][k % 4];
    off += (rem % d) * p.stride[k / 4][k % 4];
    rem /= d;
  }
  out[off] = src[i];
}

// @kernel pad
// Gradient of slice: out has the input's shape; elements inside the slice box take the
// matching element of g (contiguous, the slice's shape), all others are zero.
// Params: shape: out shape; start: box start per dim; len: box length per dim; gstride: g's
// contiguous strides.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> g: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  var rem = i;
  var off = 0u;
  var inside = true;
  for (var k = {{RANK}} - 1; k >= 0; k--) {
    let d = p.shape[k / 4][k % 4];
    // u32 wrap-around makes c < start fail the `< len` test too
    let c = (rem % d) - p.start[k / 4][k % 4];
    rem /= d;
    inside = inside && c < p.len[k / 4][k % 4];
    off += c * p.gstride[k / 4][k % 4];
  }
  out[i] = select(0u, g[off], inside);
}

// @kernel gather
// out[o, m, r] = x[o, clamp(idx[m]), r] with x viewed as [outer, axisLen, inner].
// Params: n: out elements = outer * m * inner; m: number of indices; signed: indices are i32.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let r = i % p.inner;
  let t = i / p.inner;
  let j = t % p.m;
  let o = t / p.m;
  let a = clampIndex(idx[j], p.axisLen, p.signed);
  out[i] = x[(o * p.axisLen + a) * p.inner + r];
}

// ---- gather backward: a stable counting sort of index positions by destination row, then
// sums over fixed segments of each row's bucket, then per-row sums of the segments.
// The indices are cut into blocks of `block` consecutive positions. hist[b * axisLen + a]
// counts block b's positions that hit row a, and rank[j] is j's rank among the earlier
// positions of its block with the same row. After colscan and rowscan,
// pos(j) = rowStart[a] + hist[b * axisLen + a] + rank[j] is j's place in the sorted order.
// Row a's bucket is cut into segments of SEG positions (segStart[a] .. segStart[a+1]), so a
// row that takes every index is still summed by many threads. Every summation order depends
// only on the indices, never on timing.


// @kernel gather_hist
// One thread per block walks its positions in order (hist must be zeroed before).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read_write> hist: array<u32>;
@group(0) @binding(2) var<storage, read_write> rank: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = lin(gid, nwg, 64u);
  if (b >= p.nBlocks) { return; }
  let end = min(p.m, (b + 1u) * p.block);
  for (var j = b * p.block; j < end; j++) {
    let h = b * p.axisLen + clampIndex(idx[j], p.axisLen, p.signed);
    rank[j] = hist[h];
    hist[h] = hist[h] + 1u;
  }
}

// @kernel gather_colscan
// One thread per row a: exclusive prefix of hist over blocks (in place); total[a] = the
// row's count, segs[a] = its number of segments.
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> hist: array<u32>;
@group(0) @binding(1) var<storage, read_write> total: array<u32>;
@group(0) @binding(2) var<storage, read_write> segs: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let a = lin(gid, nwg, 64u);
  if (a >= p.axisLen) { return; }
  var run = 0u;
  for (var b = 0u; b < p.nBlocks; b++) {
    let h = b * p.axisLen + a;
    let c = hist[h];
    hist[h] = run;
    run += c;
  }
  total[a] = run;
  segs[a] = (run + SEG - 1u) / SEG;
}

// @kernel gather_rowscan
// One workgroup: start[a] = sum of count[0..a) for a in [0, len], 256 rows per round.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> count: array<u32>;
@group(0) @binding(1) var<storage, read_write> start: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> buf: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var carry = 0u;
  for (var base = 0u; base <= p.len; base += 256u) {
    let a = base + t;
    var v = 0u;
    if (a < p.len) { v = count[a]; }
    buf[t] = v;
    workgroupBarrier();
    // Hillis-Steele inclusive scan of the round
    for (var s = 1u; s < 256u; s *= 2u) {
      var add = 0u;
      if (t >= s) { add = buf[t - s]; }
      workgroupBarrier();
      buf[t] += add;
      workgroupBarrier();
    }
    if (a <= p.len) { start[a] = carry + buf[t] - v; }
    carry += buf[255];
    workgroupBarrier();
  }
}

// @kernel gather_place
// One thread per index position: writes j into its slot of the sorted order.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read> hist: array<u32>;
@group(0) @binding(2) var<storage, read> rank: array<u32>;
@group(0) @binding(3) var<storage, read> rowStart: array<u32>;
@group(0) @binding(4) var<storage, read_write> order: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = lin(gid, nwg, 256u);
  if (j >= p.m) { return; }
  let a = clampIndex(idx[j], p.axisLen, p.signed);
  let b = j / p.block;
  order[rowStart[a] + hist[b * p.axisLen + a] + rank[j]] = j;
}

// @kernel gather_segsum
// One thread per (o, segment s, r), s < maxSegs (the CPU's upper bound; threads past the real
// count exit): partial[o, s, r] = sum of g[o, j, r] over the segment's positions, in order.
// Params: n: outer * maxSegs * inner.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read> rowStart: array<u32>;
@group(0) @binding(3) var<storage, read> segStart: array<u32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let r = i % p.inner;
  let t = i / p.inner;
  let s = t % p.maxSegs;
  let o = t / p.maxSegs;
  if (s >= segStart[p.axisLen]) { return; }
  // the row owning segment s: the last a with segStart[a] <= s (empty rows own none)
  var lo = 0u;
  var hi = p.axisLen;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (segStart[mid] <= s) { lo = mid; } else { hi = mid; }
  }
  let first = rowStart[lo] + (s - segStart[lo]) * SEG;
  let last = min(first + SEG, rowStart[lo + 1u]);
  var acc = 0.0;
  let gBase = o * p.m * p.inner + r;
  for (var q = first; q < last; q++) {
    acc += g[gBase + order[q] * p.inner];
  }
  partial[i] = acc;
}

// @kernel gather_sum
// One thread per element (o, a, r) of dx: the sum of row a's segment partials, in order.
// Params: n: dx elements = outer * axisLen * inner.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read> segStart: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let r = i % p.inner;
  let t = i / p.inner;
  let a = t % p.axisLen;
  let o = t / p.axisLen;
  var acc = 0.0;
  let base = o * p.maxSegs * p.inner + r;
  for (var s = segStart[a]; s < segStart[a + 1u]; s++) {
    acc += partial[base + s * p.inner];
  }
  dx[i] = acc;
}
