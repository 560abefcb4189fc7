// Vector quantiser kernels around the nearest-code search (that one is in vq_nearest.wgsl):
// the gather of z_q with the loss's sum of squares, the two loss gradients, per-code counts,
// the perplexity / usage statistics, the EMA codebook update and k-means++ / Lloyd steps.
// Per-code sums of rows come from gather's segmented backward (engine/shape.ts), which splits
// every code's rows into fixed segments: a collapsed codebook does not serialise. Row-major z and z_q [N, D], codebook [K, D], indices u32.
// Every float sum has a fixed order (sequential loops or fixed trees in workgroup memory), so
// results repeat exactly; only integer counts use atomics.
// Row-wise kernels work on vectors V of W floats: vec4f when D is a multiple of 4 (a quarter
// of the loads: lavapipe pays per load instruction), else f32; `dv` is D / W, vectors per row,
// and HSUM(x) the sum of a vector's components.

fn lin(gid: vec3u, nwg: vec3u, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

var<workgroup> redf: array<f32, 256>;
var<workgroup> redu: array<u32, 256>;

// Tree-sums redf[0..256) into redf[0]; every thread of the workgroup must call it.
fn treeSumF(t: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { redf[t] += redf[t + s]; }
  }
  workgroupBarrier();
}

fn treeSumU(t: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { redu[t] += redu[t + s]; }
  }
  workgroupBarrier();
}

// @kernel gather_loss
// zq = codebook[idx] row by row, and per workgroup the sum of (zq - z)^2 over a fixed chunk
// of 256 * PER vectors (reduced by loss_final).
alias V = {{V}};
const PER = 16u;
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<V>;
@group(0) @binding(1) var<storage, read> e: array<V>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> zq: array<V>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let w = wid.x + wid.y * nwg.x;
  let total = p.n * p.dv;
  var acc = V(0.0);
  for (var q = 0u; q < PER; q++) {
    let i = w * 256u * PER + q * 256u + t;  // neighbouring threads, neighbouring vectors
    if (i < total) {
      let row = i / p.dv;
      let col = i - row * p.dv;
      let v = e[min(idx[row], p.k - 1u) * p.dv + col];
      zq[i] = v;
      let diff = v - z[i];
      acc = fma(diff, diff, acc);
    }
  }
  let x = acc;
  redf[t] = {{HSUM}};
  treeSumF(t);
  if (t == 0u) { partial[w] = redf[0]; }
}

// @kernel loss_final
// m = mean((zq - z)^2); codebook loss m, commitment loss beta * m, and their sum as used for
// training (without the codebook term when the codebook is trained by EMA).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> cb: array<f32>;
@group(0) @binding(2) var<storage, read_write> cm: array<f32>;
@group(0) @binding(3) var<storage, read_write> total: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var acc = 0.0;
  for (var i = t; i < p.parts; i += 256u) { acc += partial[i]; }
  redf[t] = acc;
  treeSumF(t);
  if (t == 0u) {
    let m = redf[0] * p.invCount;
    cb[0] = m;
    cm[0] = p.beta * m;
    total[0] = p.codebookTerm * m + p.beta * m;
  }
}

// @kernel commit_grad
// Gradient of beta * mean((sg zq - z)^2) at z: scale * g * (z - zq), scale = 2 beta / (N D).
alias V = {{V}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<V>;
@group(0) @binding(1) var<storage, read> zq: array<V>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<V>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.count) { return; }
  dz[i] = (p.scale * g[0]) * (z[i] - zq[i]);
}

// @kernel code_counts
// counts[k] += number of rows with idx == k (counts zeroed by the caller). Integer atomics:
// the result does not depend on their order.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  atomicAdd(&counts[min(idx[i], p.k - 1u)], 1u);
}

// @kernel stats
// From per-code counts: perplexity exp(-sum p ln(p + 1e-10)) with p = count / total, and the
// number of codes with a non-zero count.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> counts: array<u32>;
@group(0) @binding(1) var<storage, read_write> ppl: array<f32>;
@group(0) @binding(2) var<storage, read_write> used: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var n = 0u;
  var u = 0u;
  for (var k = t; k < p.k; k += 256u) {
    n += counts[k];
    u += select(0u, 1u, counts[k] > 0u);
  }
  redu[t] = n;
  treeSumU(t);
  let total = max(f32(redu[0]), 1.0);
  workgroupBarrier();
  redu[t] = u;
  treeSumU(t);
  var h = 0.0;
  for (var k = t; k < p.k; k += 256u) {
    let pk = f32(counts[k]) / total;
    h -= pk * log(pk + 1e-10);
  }
  redf[t] = h;
  treeSumF(t);
  if (t == 0u) {
    ppl[0] = exp(redf[0]);
    used[0] = f32(redu[0]);
  }
}

// @kernel usage_mark
// seen[k] = step for every code used in this batch (step counts batches from 1).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> counts: array<u32>;
@group(0) @binding(1) var<storage, read_write> seen: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = lin(gid, nwg, 64u);
  if (k >= p.k) { return; }
  if (counts[k] > 0u) { seen[k] = p.step; }
}

// @kernel usage_count
// Number of codes used in the last `window` batches (seen within (step - window, step]).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> seen: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var u = 0u;
  for (var k = t; k < p.k; k += 256u) {
    let s = seen[k];
    u += select(0u, 1u, s != 0u && p.step - s < p.window);
  }
  redu[t] = u;
  treeSumU(t);
  if (t == 0u) { out[0] = f32(redu[0]); }
}

// ---- EMA codebook (SPEC section 3; launched by engine/vq_ema.ts). State: emaN [K] and
// emaM [K, D], the raw exponential moving averages of counts and sums; `bias` is 1 - decay^t
// with Sonnet's debiasing (1 without it), so N^ = emaN / bias and m^ = emaM / bias.

// @kernel ema_counts
// One workgroup: emaN <- decay emaN + (1 - decay) n; total = sum N^; Laplace smoothing
// smoothN = (N^ + eps) / (total + K eps) * total; codes with N^ < threshold are marked dead
// (when restarts are on) and their count restarts at N^ = 1. The debiasing divisor
// 1 - decay^t is stepBias[0], written once per step (a recorded step replays with a new one).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> counts: array<u32>;
@group(0) @binding(1) var<storage, read_write> emaN: array<f32>;
@group(0) @binding(2) var<storage, read_write> smoothN: array<f32>;
@group(0) @binding(3) var<storage, read_write> dead: array<u32>;
@group(0) @binding(4) var<storage, read_write> ndead: array<u32>;
@group(0) @binding(5) var<storage, read> stepBias: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  let bias = stepBias[0];
  var s = 0.0;
  for (var k = t; k < p.k; k += 256u) {
    let nk = p.decay * emaN[k] + (1.0 - p.decay) * f32(counts[k]);
    emaN[k] = nk;
    s += nk / bias;
  }
  redf[t] = s;
  treeSumF(t);
  let total = redf[0];
  var nd = 0u;
  for (var k = t; k < p.k; k += 256u) {
    let nh = emaN[k] / bias;
    smoothN[k] = (nh + p.eps) / (total + f32(p.k) * p.eps) * total;
    let isDead = p.restart != 0u && nh < p.threshold;
    dead[k] = select(0u, 1u, isDead);
    if (isDead) {
      emaN[k] = bias;
      nd++;
    }
  }
  redu[t] = nd;
  treeSumU(t);
  if (t == 0u) { ndead[0] = redu[0]; }
}

// @kernel ema_update
// Per (code k, vector column c), from the batch's per-code sums s of z: emaM <- decay emaM +
// (1 - decay) s; e = m^ / smoothN. A dead code instead takes the row restartRows[k] of z, with
// m^ = that row. stepBias[0] as in ema_counts.
alias V = {{V}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<V>;
@group(0) @binding(1) var<storage, read> sums: array<V>;
@group(0) @binding(2) var<storage, read> smoothN: array<f32>;
@group(0) @binding(3) var<storage, read> dead: array<u32>;
@group(0) @binding(4) var<storage, read> restartRows: array<u32>;
@group(0) @binding(5) var<storage, read_write> emaM: array<V>;
@group(0) @binding(6) var<storage, read_write> e: array<V>;
@group(0) @binding(7) var<storage, read> stepBias: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 64u);
  if (i >= p.k * p.dv) { return; }
  let bias = stepBias[0];
  let k = i / p.dv;
  let c = i - k * p.dv;
  if (dead[k] != 0u) {
    let v = z[restartRows[k] * p.dv + c];
    e[i] = v;
    emaM[i] = bias * v;
    return;
  }
  let m = p.decay * emaM[i] + (1.0 - p.decay) * sums[i];
  emaM[i] = m;
  e[i] = (m / bias) / smoothN[k];
}

// ---- k-means++ seeding and Lloyd steps (engine/vq_ema.ts, kmeansInit).

// @kernel kpp_dist
// dmin[i] = squared distance of row i to the newest centre (first call) or the minimum of the
// previous value and that distance.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> e: array<f32>;
@group(0) @binding(2) var<storage, read_write> dmin: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 64u);
  if (i >= p.n) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.d; c++) {
    let diff = z[i * p.d + c] - e[p.code * p.d + c];
    s = fma(diff, diff, s);
  }
  dmin[i] = select(min(dmin[i], s), s, p.first != 0u);
}

// @kernel kpp_pick
// One workgroup: draws row i with probability weight_i / sum(weight), weight = dmin (or 1 for
// the first centre), by inverse CDF at u; copies it into codebook row `code`. Thread t sums a
// contiguous range of rows; thread 0 walks the range sums, then the rows of the chosen range.
// If every weight is 0 (rows all on centres already) it takes row floor(u n).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> dmin: array<f32>;
@group(0) @binding(2) var<storage, read_write> e: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> pick: u32;

fn weight(i: u32) -> f32 {
  return select(dmin[i], 1.0, p.first != 0u);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  let per = (p.n + 255u) / 256u;
  let start = min(t * per, p.n);
  let end = min(start + per, p.n);
  var s = 0.0;
  for (var i = start; i < end; i++) { s += weight(i); }
  redf[t] = s;
  workgroupBarrier();
  if (t == 0u) {
    var total = 0.0;
    for (var r = 0u; r < 256u; r++) { total += redf[r]; }
    var row = min(u32(p.u * f32(p.n)), p.n - 1u);
    if (total > 0.0) {
      let goal = p.u * total;
      var cum = 0.0;
      var range = 255u;
      for (var r = 0u; r < 256u; r++) {
        if (cum + redf[r] > goal) { range = r; break; }
        cum += redf[r];
      }
      // The first row whose running sum passes the goal; if rounding leaves none, the
      // range's last row with a positive weight.
      var found = false;
      var last = p.n;
      for (var i = min(range * per, p.n); i < min(range * per + per, p.n); i++) {
        let w = weight(i);
        if (w > 0.0) { last = i; }
        cum += w;
        if (cum > goal && w > 0.0) { row = i; found = true; break; }
      }
      if (!found && last < p.n) { row = last; }
    }
    pick = row;
  }
  let row = workgroupUniformLoad(&pick);
  for (var c = t; c < p.d; c += 256u) { e[p.code * p.d + c] = z[row * p.d + c]; }
}

// @kernel kmeans_update
// A Lloyd step: every code with assigned rows moves to their mean (from the per-code sums);
// codes with none keep their place.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> sums: array<f32>;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> e: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 64u);
  if (i >= p.k * p.d) { return; }
  let n = counts[i / p.d];
  if (n == 0u) { return; }
  e[i] = sums[i] / f32(n);
}
