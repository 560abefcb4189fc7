// Categorical draws, one per row, written into a u32 code map with no read-back: row s has K
// logits at logits[s * rowStride + k * kStride + offset] and the uniform u[uOffset + s]; the
// code is the smallest k whose cumulative weight exceeds u * (sum of weights), with weights
// exp((logit_k - max) / T) (softmax with temperature, inverse CDF), written to
// out[s * outStride + outOffset]. greedy != 0 takes the first argmax (temperature 0). When
// rounding leaves u * sum at or past the last cumulative weight, the last code of non-zero
// weight is drawn. One invocation per row: K is at most a few thousand.
{{PARAMS}}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> uniforms: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let s = gid.x;
  if (s >= p.rows) { return; }
  let base = s * p.rowStride + p.offset;
  var m = logits[base];
  var best = 0u;
  for (var k = 1u; k < p.K; k++) {
    let v = logits[base + k * p.kStride];
    if (v > m) { m = v; best = k; }
  }
  if (p.greedy != 0u) {
    out[s * p.outStride + p.outOffset] = best;
    return;
  }
  var total = 0.0;
  for (var k = 0u; k < p.K; k++) {
    total += exp((logits[base + k * p.kStride] - m) * p.invT);
  }
  let goal = uniforms[p.uOffset + s] * total;
  var acc = 0.0;
  var code = best;
  var last = best;
  var found = false;
  for (var k = 0u; k < p.K; k++) {
    let w = exp((logits[base + k * p.kStride] - m) * p.invT);
    acc += w;
    if (w > 0.0) { last = k; }
    if (!found && acc > goal) { code = k; found = true; }
  }
  if (!found) { code = last; }
  out[s * p.outStride + p.outOffset] = code;
}
