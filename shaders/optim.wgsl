// Optimiser updates, one fused kernel per parameter per step. These are the only kernels that
// write their inputs in place (param and optimiser state). Formulas follow PyTorch's
// single-tensor torch.optim.Adam / torch.optim.SGD, in the same order of operations.

fn lin(gid: vec3u, nwg: vec3u, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

// @kernel adam
// step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t) and the 1 - beta weights come
// from the CPU (float64, then rounded once, as PyTorch's scalar arguments are). The two
// per-step scalars sit at stepScalars[2 index], [2 index + 1], written once per step for every
// parameter, so a recorded step replays with new ones (engine/recording.ts).
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> stepScalars: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = param[i];
  let g = grad[i] + p.weight_decay * x;                   // L2 penalty, as torch.optim.Adam
  let mi = m[i] + p.one_minus_beta1 * (g - m[i]);         // exp_avg.lerp_(g, 1 - beta1)
  let vi = v[i] * p.beta2 + p.one_minus_beta2 * g * g;      // exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
  let step_size = stepScalars[2u * p.index];
  let bc2_sqrt = stepScalars[2u * p.index + 1u];
  let denom = sqrt(vi) / bc2_sqrt + p.eps;
  m[i] = mi;
  v[i] = vi;
  param[i] = x - step_size * (mi / denom);
}

// @kernel sgd
// Plain SGD (no momentum): param -= lr * (g + weight_decay * param). lr is stepScalars[0],
// written once per step (a recorded step replays with a new one).
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> stepScalars: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = param[i];
  param[i] = x - stepScalars[0] * (grad[i] + p.weight_decay * x);
}

// @kernel sgd_momentum
// buf = g on the first step, else momentum * buf + (1 - dampening) * g;
// the update direction is buf, or g + momentum * buf with Nesterov. lr is stepScalars[0] and
// the parameter's first-step flag stepScalars[1 + index] (1 or 0), written once per step.
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> buf: array<f32>;
@group(0) @binding(3) var<storage, read> stepScalars: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg, 256u);
  if (i >= p.n) { return; }
  let x = param[i];
  let g = grad[i] + p.weight_decay * x;
  var b = g;
  if (stepScalars[1u + p.index] == 0.0) { b = buf[i] * p.momentum + p.one_minus_dampening * g; }
  buf[i] = b;
  var d = b;
  if (p.nesterov != 0u) { d = g + p.momentum * b; }
  param[i] = x - stepScalars[0] * d;
}

// @kernel adam_multi
// adam for several parameters in one dispatch (multi-tensor Adam): parameter j binds its own
// param/grad/m/v at bindings 4j..4j+3 (WGSL cannot index bindings, so the launcher emits one
// update block per parameter) and owns workgroups [table[j].z, table[j].w) with n = table[j].x
// elements and step scalars at index table[j].y. adam_element is adam's arithmetic line for
// line, so each element gets the same f32 operations in the same order (bitwise equal,
// test/fusion.test.ts). Gated by loss scaling (the launcher's gated variant) it is
// loss_scale.wgsl's adam: the gradient times inv_scale, nothing written after an inf or NaN.
struct Updated { x: f32, m: f32, v: f32 }
// The loss scaler's state (engine/loss_scale.ts), as far as Adam reads it.
struct LossScale { scale: f32, inv_scale: f32, growth_tracker: u32, found_inf: u32 }
{{PARAMS}}
{{BINDINGS}}
@group(0) @binding({{SCALARS}}) var<storage, read> stepScalars: array<f32>;
{{STATE}}
@group(0) @binding({{UNIFORM}}) var<uniform> p: Params;

fn adam_element(x: f32, grad: f32, m: f32, v: f32, index: u32) -> Updated {
  let g = grad{{UNSCALE}} + p.weight_decay * x;
  let mi = m + p.one_minus_beta1 * (g - m);
  let vi = v * p.beta2 + p.one_minus_beta2 * g * g;
  let step_size = stepScalars[2u * index];
  let bc2_sqrt = stepScalars[2u * index + 1u];
  let denom = sqrt(vi) / bc2_sqrt + p.eps;
  return Updated(x - step_size * (mi / denom), mi, vi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  {{GUARD}}
{{UPDATES}}
}
