// Mean squared error, deterministic and without float atomics: `mse_partial` sums squared
// differences over fixed chunks of CHUNK = 256 * PER_THREAD elements (one workgroup each,
// a fixed tree in shared memory), `mse_final` reduces the partial sums in one workgroup and
// divides by n. The partition depends only on n, so the result is the same every run.

fn lin(gid: vec3u, nwg: vec3u, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

const PER_THREAD = 16u;

var<workgroup> buf: array<f32, 256>;

// Tree-sums buf[0..256) into buf[0]; every thread of the workgroup must call it.
fn treeSum(t: u32) {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { buf[t] += buf[t + s]; }
  }
  workgroupBarrier();
}

// @kernel mse_partial
{{PARAMS}}
@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> tgt: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let w = wid.x + wid.y * nwg.x;
  let start = w * 256u * PER_THREAD;
  var acc = 0.0;
  for (var k = 0u; k < PER_THREAD; k++) {
    let i = start + k * 256u + t;  // neighbouring threads read neighbouring elements
    if (i < p.n) {
      let d = pred[i] - tgt[i];
      acc += d * d;
    }
  }
  buf[t] = acc;
  treeSum(t);
  if (t == 0u) { partial[w] = buf[0]; }
}

// @kernel mse_final
{{PARAMS}}
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var acc = 0.0;
  for (var i = t; i < p.parts; i += 256u) { acc += partial[i]; }
  buf[t] = acc;
  treeSum(t);
  if (t == 0u) { out[0] = buf[0] / p.count; }
}

// @kernel mse_grad1
// One gradient: d = scale * g * (pred - target), scale = +2/n for pred, -2/n for target.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> tgt: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> d: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  d[i] = (p.scale * g[0]) * (pred[i] - tgt[i]);
}

// @kernel mse_grad2
// Both gradients at once: dPred = 2 g / n (pred - target), dTarget = -dPred.
{{PARAMS}}
@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> tgt: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dPred: array<f32>;
@group(0) @binding(4) var<storage, read_write> dTarget: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let v = (p.scale * g[0]) * (pred[i] - tgt[i]);
  dPred[i] = v;
  dTarget[i] = -v;
}
