// Bytes to f32 through a 256-entry table: out[i] = table[byte i], byte i being byte i % 4
// (little-endian) of word i / 4. A table lookup is exact by construction, so the result equals
// the CPU's conversion bit for bit (WGSL division is not correctly rounded). One invocation
// per word writes one vec4f; the output's buffer holds whole vec4s (pool buffers are 16-byte
// multiples), and the values past n that the last word writes are padding nothing reads.

// @kernel widen
{{PARAMS}}

@group(0) @binding(0) var<storage, read> bytes: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<f32, 256>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * 256u;
  if (w >= p.words) { return; }
  let v = bytes[w];
  out[w] = vec4f(table[v & 255u], table[(v >> 8u) & 255u], table[(v >> 16u) & 255u], table[v >> 24u]);
}
