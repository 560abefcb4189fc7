// Elementwise kernels. The launcher fills in the op as a WGSL expression ({{EXPR}}), the type T
// it computes in: f32, or vec4f when a same-shape op's element count is a multiple of 4 (four
// elements per invocation: fewer invocations and wider loads), and the storage type S: T for
// f32 tensors, f16 / vec4<f16> for f16 ones (the module then starts with `enable f16;`). Loads
// widen to T and the store rounds once to S (nearest even): a single +, -, * on halves is thereby
// the correctly rounded f16 result (f32 holds the exact product of two halves, and
// 24 >= 2 * 11 + 2 makes the double rounding of a sum harmless), as PyTorch's half kernels,
// which also compute in float. Expressions are written to be valid for f32 and vec4f (T(0.0)
// rather than 0.0 where a builtin needs matching types).
//   unary:          y = EXPR(x, s)            s: a scalar from the uniform (scale, x + s, ...)
//   unary_grad:     dx = EXPR(g, v, s)        v: the saved input or output of the forward op
//   binary:         y = EXPR(a, b)            a, b, y of one shape
//   binary_bcast:   y = EXPR(a, b)            a, b broadcast to y through strides (0 = repeated)
//   ternary:        y = EXPR(g, a, b)         g, a, b, y of one shape (backward of div, max, min)
//   ternary_bcast:  y = EXPR(g, a, b)         g and y of the output shape, a and b broadcast
// 1-D grids may be split over x and y (runtime grid1d), hence the linearised index.
// Offsets are u32: a storage binding is far below 2^32 elements.

// tanh from exp: llvmpipe's builtin tanh has a relative error of 1.7e-4 near 0 (it computes
// 1 - 2/(e^2x + 1)). Near 0 an odd Taylor polynomial (error < 2e-8 relative for |x| < 0.25);
// elsewhere (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.61, which neither cancels nor overflows.
fn tanh_(x: T) -> T {
  let a = abs(x);
  let e = exp(-2.0 * a);
  let far = sign(x) * (1.0 - e) / (1.0 + e);
  let x2 = x * x;
  let near = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
  return select(far, near, a < T(0.25));
}

// exp(-x) overflows to +inf for x < -88, and 1 / inf = 0 is the right limit.
fn sigmoid_(x: T) -> T {
  return 1.0 / (1.0 + exp(-x));
}

// Offsets of a and b for output element i of a (collapsed) shape of `rank` dims, and i's
// coordinate along the last dim: (offA, offB, c0). Dims and strides sit in two vec4u each (a
// uniform array's stride must be 16 bytes). Callers pass a constant rank so the loop unrolls.
fn bcastOffsets(i: u32, rank: u32, shape: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2>) -> vec3u {
  var rem = i;
  var off = vec2u(0u, 0u);
  var c0 = 0u;
  for (var d = rank; d > 0u; d--) {
    let k = d - 1u;
    let dim = shape[k / 4u][k % 4u];
    let c = rem % dim;
    if (d == rank) { c0 = c; }
    rem = rem / dim;
    off += c * vec2u(sa[k / 4u][k % 4u], sb[k / 4u][k % 4u]);
  }
  return vec3u(off, c0);
}

// Broadcast kernels write PER consecutive outputs per invocation (16 on CPU devices, 1 on
// GPUs; see broadcastPerInvocation): integer division has no SIMD form on CPUs, so the
// coordinates are computed once and then stepped along the last dim (recomputed where a row
// ends).

// @kernel unary
alias T = {{T}};
alias S = {{S}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> X: array<S>;
@group(0) @binding(1) var<storage, read_write> Y: array<S>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let x = T(X[i]);
  let s = p.s;
  Y[i] = S({{EXPR}});
}

// @kernel unary_grad
alias T = {{T}};
alias S = {{S}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> G: array<S>;
@group(0) @binding(1) var<storage, read> V: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = T(G[i]);
  let v = T(V[i]);
  let s = p.s;
  Y[i] = S({{EXPR}});
}

// @kernel binary
alias T = {{T}};
alias S = {{S}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> A: array<S>;
@group(0) @binding(1) var<storage, read> B: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let a = T(A[i]);
  let b = T(B[i]);
  Y[i] = S({{EXPR}});
}

// @kernel binary_bcast
alias T = f32;
alias S = {{S}};
const PER = {{PER}}u;
{{PARAMS}}
@group(0) @binding(0) var<storage, read> A: array<S>;
@group(0) @binding(1) var<storage, read> B: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = bcastOffsets(i0, {{RANK}}u, p.shape, p.sa, p.sb);
  let last = {{RANK}}u - 1u;
  let step = vec2u(p.sa[last / 4u][last % 4u], p.sb[last / 4u][last % 4u]);
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    let a = T(A[o.x]);
    let b = T(B[o.y]);
    Y[i] = S({{EXPR}});
    if (o.z + 1u < dim0) {
      o = vec3u(o.xy + step, o.z + 1u);
    } else {
      o = bcastOffsets(i + 1u, {{RANK}}u, p.shape, p.sa, p.sb);
    }
  }
}

// @kernel ternary
alias T = {{T}};
alias S = {{S}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> G: array<S>;
@group(0) @binding(1) var<storage, read> A: array<S>;
@group(0) @binding(2) var<storage, read> B: array<S>;
@group(0) @binding(3) var<storage, read_write> Y: array<S>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = T(G[i]);
  let a = T(A[i]);
  let b = T(B[i]);
  Y[i] = S({{EXPR}});
}

// @kernel ternary_bcast
alias T = f32;
alias S = {{S}};
const PER = {{PER}}u;
{{PARAMS}}
@group(0) @binding(0) var<storage, read> G: array<S>;
@group(0) @binding(1) var<storage, read> A: array<S>;
@group(0) @binding(2) var<storage, read> B: array<S>;
@group(0) @binding(3) var<storage, read_write> Y: array<S>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = bcastOffsets(i0, {{RANK}}u, p.shape, p.sa, p.sb);
  let last = {{RANK}}u - 1u;
  let step = vec2u(p.sa[last / 4u][last % 4u], p.sb[last / 4u][last % 4u]);
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    let g = T(G[i]);
    let a = T(A[o.x]);
    let b = T(B[o.y]);
    Y[i] = S({{EXPR}});
    if (o.z + 1u < dim0) {
      o = vec3u(o.xy + step, o.z + 1u);
    } else {
      o = bcastOffsets(i + 1u, {{RANK}}u, p.shape, p.sa, p.sb);
    }
  }
}

// @kernel binary_unary
// Two outputs of one pass: y = EXPR(a, b), then z = EXPR2(x) of x = y as stored (a residual add
// and the ReLU after it: addRelu in engine/elementwise.ts). Each output is what the op alone
// gives (with f16 storage, z is computed from y rounded to f16, as the second op would load it).
alias T = {{T}};
alias S = {{S}};
{{PARAMS}}
@group(0) @binding(0) var<storage, read> A: array<S>;
@group(0) @binding(1) var<storage, read> B: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@group(0) @binding(3) var<storage, read_write> Z: array<S>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let a = T(A[i]);
  let b = T(B[i]);
  let y = S({{EXPR}});
  Y[i] = y;
  let x = T(y);
  Z[i] = S({{EXPR2}});
}
