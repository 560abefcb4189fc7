// Dynamic loss scaling (engine/loss_scale.ts) with its state on the GPU, so a training step
// never waits for a readback: the scale, its inverse, the steps since the last change, this
// step's found-inf flag, and counts of skipped and of all steps. Every scale change is by a
// factor the CPU gives with its inverse (2 and 0.5 by default), so for a power-of-two scale the
// scale and its inverse stay exact powers of two and unscaling is exact.

struct State {
  scale: f32,
  inv_scale: f32,
  growth_tracker: u32,
  found_inf: u32,
  skipped: u32,
  steps: u32,
}

// @kernel scale
// y = x * scale: the scaled loss, and its gradient (which the scale multiplies again).
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> state: State;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  Y[i] = X[i] * state.scale;
}

// @kernel check
// Sets found_inf when any of the n gradient values is an infinity or NaN. The test is on the
// bits (exponent all ones), which no compiler's fast-math assumptions can fold away. Only the
// n values are read: a pool buffer's padding may hold anything.
struct Flags {
  scale: f32,
  inv_scale: f32,
  growth_tracker: u32,
  found_inf: atomic<u32>,
}
{{PARAMS}}
@group(0) @binding(0) var<storage, read> grad: array<u32>;
@group(0) @binding(1) var<storage, read_write> state: Flags;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  if ((grad[i] & 0x7f800000u) == 0x7f800000u) {
    atomicOr(&state.found_inf, 1u);
  }
}

// @kernel adam
// optim.wgsl's adam with the gradient unscaled (times inv_scale) and nothing written when this
// step found an inf or NaN: the same bindings and parameters, then the state. Its arithmetic
// is adam's, line for line (test/loss_scale.test.ts checks the two bitwise). Many parameters
// per dispatch (flag fuse) take optim.wgsl's adam_multi, gated the same way.
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> stepScalars: array<f32>;
@group(0) @binding(5) var<storage, read> state: State;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n || state.found_inf != 0u) { return; }
  let x = param[i];
  let g = grad[i] * state.inv_scale + p.weight_decay * x;
  let mi = m[i] + p.one_minus_beta1 * (g - m[i]);
  let vi = v[i] * p.beta2 + p.one_minus_beta2 * g * g;
  let step_size = stepScalars[2u * p.index];
  let bc2_sqrt = stepScalars[2u * p.index + 1u];
  let denom = sqrt(vi) / bc2_sqrt + p.eps;
  m[i] = mi;
  v[i] = vi;
  param[i] = x - step_size * (mi / denom);
}

// @kernel update
// The end of a step (torch.cuda.amp.GradScaler.update): on inf/NaN the scale backs off and the
// step counts as skipped; otherwise after growth_interval clean steps in a row it grows (unless
// that overflows f32). Clears found_inf for the next step. One invocation.
{{PARAMS}}
@group(0) @binding(0) var<storage, read_write> state: State;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(1)
fn main() {
  var s = state;
  if (s.found_inf != 0u) {
    s.scale *= p.backoff;
    s.inv_scale *= p.inv_backoff;
    s.growth_tracker = 0u;
    s.skipped += 1u;
  } else {
    s.growth_tracker += 1u;
    if (s.growth_tracker == p.growth_interval) {
      let grown = s.scale * p.growth;
      if ((bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u) {
        s.scale = grown;
        s.inv_scale *= p.inv_growth;
      }
      s.growth_tracker = 0u;
    }
  }
  s.found_inf = 0u;
  s.steps += 1u;
  state = s;
}
