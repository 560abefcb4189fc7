// Gated activation of PixelCNN: x [B, 2C, S] -> y [B, C, S] = tanh(a) * sigmoid(b) with a the
// first C channels and b the last C (S = spatial positions). One invocation per output.
{{PARAMS}}

@group(0) @binding(0) var<storage, read> x: array<f32>;
{{BINDINGS}}
@group(0) @binding({{UNIFORM}}) var<uniform> p: Params;

// tanh from exp, accurate near 0 and saturating cleanly for large |v|
fn tanh_(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}
fn sigmoid_(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

// index of a in x for output element i (b, c, s): b * 2CS + c * S + s
fn a_index(i: u32) -> u32 {
  let b = i / p.cs;
  return i + b * p.cs;
}

// @kernel forward
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let ia = a_index(i);
  y[i] = tanh_(x[ia]) * sigmoid_(x[ia + p.cs]);
}

// @kernel backward
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let ia = a_index(i);
  let t = tanh_(x[ia]);
  let s = sigmoid_(x[ia + p.cs]);
  dx[ia] = g[i] * s * (1.0 - t * t);
  dx[ia + p.cs] = g[i] * t * s * (1.0 - s);
}
