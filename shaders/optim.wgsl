// Optimiser updates, one fused kernel per parameter per step. These are the only kernels that
// write their inputs in place (param and optimiser state). Formulas follow PyTorch's
// single-tensor torch.optim.Adam / torch.optim.SGD, in the same order of operations.

fn lin(gid: vec3u, nwg: vec3u, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

// @kernel adam
// step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t) and the 1 - beta weights come
// from the CPU (float64, then rounded once, as PyTorch's scalar arguments are).
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = param[i];
  let g = grad[i] + p.weight_decay * x;                   // L2 penalty, as torch.optim.Adam
  let mi = m[i] + p.one_minus_beta1 * (g - m[i]);         // exp_avg.lerp_(g, 1 - beta1)
  let vi = v[i] * p.beta2 + p.one_minus_beta2 * g * g;      // exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
  let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
  m[i] = mi;
  v[i] = vi;
  param[i] = x - p.step_size * (mi / denom);
}

// @kernel sgd
// Plain SGD (no momentum): param -= lr * (g + weight_decay * param).
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = param[i];
  param[i] = x - p.lr * (grad[i] + p.weight_decay * x);
}

// @kernel sgd_momentum
// buf = g on the first step, else momentum * buf + (1 - dampening) * g;
// the update direction is buf, or g + momentum * buf with Nesterov.
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> buf: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = param[i];
  let g = grad[i] + p.weight_decay * x;
  var b = g;
  if (p.first == 0u) { b = buf[i] * p.momentum + p.one_minus_dampening * g; }
  buf[i] = b;
  var d = b;
  if (p.nesterov != 0u) { d = g + p.momentum * b; }
  param[i] = x - p.lr * d;
}
