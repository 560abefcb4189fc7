// Fused log-softmax + cross-entropy over the class axis of logits laid out [B, K, S] (class
// stride S: S = 1 for [N, K] rows, S = H*W for NCHW score maps). One invocation per row
// (b, s) keeps an online max / sum of exponentials (rescaled when the max grows), so a row is
// read once forward and stays stable for large logits and any K.
{{PARAMS}}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
{{BINDINGS}}
@group(0) @binding({{UNIFORM}}) var<uniform> p: Params;

fn row_base(row: u32) -> u32 {
  let b = row / p.s;
  return b * p.k * p.s + (row - b * p.s);
}

// @kernel forward
// Per row: lse = log sum exp(logits), loss = lse - logits[target]; out-of-range targets give NaN
// (the launcher checks targets on the CPU when it can).
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) { return; }
  let base = row_base(row);
  var m = -3.0e38;
  var sum = 0.0;
  for (var k = 0u; k < p.k; k++) {
    let v = logits[base + k * p.s];
    if (v > m) {
      sum = sum * exp(m - v) + 1.0;
      m = v;
    } else {
      sum += exp(v - m);
    }
  }
  let lse_row = m + log(sum);
  lse[row] = lse_row;
  let t = targets[row];
  if (t < p.k) {
    losses[row] = lse_row - logits[base + t * p.s];
  } else {
    losses[row] = bitcast<f32>(0x7fc00000u | (p.k & 0u)); // NaN (a runtime value: WGSL rejects a constant NaN)
  }
}

// @kernel backward
// d loss_mean / d logits = g * scale * (softmax - onehot(target)), one invocation per element.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let total = p.rows * p.k;
  if (i >= total) { return; }
  let ks = p.k * p.s;
  let b = i / ks;
  let rem = i - b * ks;
  let k = rem / p.s;
  let s = rem - k * p.s;
  let row = b * p.s + s;
  var y = exp(logits[i] - lse[row]);
  if (targets[row] == k) { y -= 1.0; }
  dlogits[i] = y * p.scale * g[0];
}
