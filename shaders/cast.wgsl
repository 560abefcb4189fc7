// Casts between f32 and f16 storage (engine/cast.ts): y = OUT(x), four elements per invocation
// when the buffers hold whole vec4s. WGSL leaves the direction of an inexact f32 -> f16
// rounding to the device (nearest even on lavapipe and NVIDIA GPUs); magnitudes from 2^16 up
// become infinities, and NaN stays NaN. Every f16 is exact in f32, so f16 -> f32 is exact.
enable f16;

// @kernel convert
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<{{IN}}>;
@group(0) @binding(1) var<storage, read_write> Y: array<{{OUT}}>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  Y[i] = {{OUT}}(X[i]);
}
