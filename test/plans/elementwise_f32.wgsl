// ==== elementwise.unary
// Elementwise kernels. The launcher fills in the op as a WGSL expression (max(x, T(0.0))), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
@group(0) @binding(0) var<storage, read> X: array<S>;
@group(0) @binding(1) var<storage, read_write> Y: array<S>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let x = T(X[i]);
  let s = p.s;
  Y[i] = S(max(x, T(0.0)));
}


// ==== elementwise.binary_bcast
// Elementwise kernels. The launcher fills in the op as a WGSL expression (a * b), the type T
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


alias T = f32;
alias S = f32;
const PER = 16u;
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, shape: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2> }
@group(0) @binding(0) var<storage, read> A: array<S>;
@group(0) @binding(1) var<storage, read> B: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = bcastOffsets(i0, 2u, p.shape, p.sa, p.sb);
  let last = 2u - 1u;
  let step = vec2u(p.sa[last / 4u][last % 4u], p.sb[last / 4u][last % 4u]);
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    let a = T(A[o.x]);
    let b = T(B[o.y]);
    Y[i] = S(a * b);
    if (o.z + 1u < dim0) {
      o = vec3u(o.xy + step, o.z + 1u);
    } else {
      o = bcastOffsets(i + 1u, 2u, p.shape, p.sa, p.sb);
    }
  }
}


// ==== elementwise.binary_bcast
// Elementwise kernels. The launcher fills in the op as a WGSL expression (a / b), the type T
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


alias T = f32;
alias S = f32;
const PER = 16u;
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, shape: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2> }
@group(0) @binding(0) var<storage, read> A: array<S>;
@group(0) @binding(1) var<storage, read> B: array<S>;
@group(0) @binding(2) var<storage, read_write> Y: array<S>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = bcastOffsets(i0, 2u, p.shape, p.sa, p.sb);
  let last = 2u - 1u;
  let step = vec2u(p.sa[last / 4u][last % 4u], p.sb[last / 4u][last % 4u]);
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    let a = T(A[o.x]);
    let b = T(B[o.y]);
    Y[i] = S(a / b);
    if (o.z + 1u < dim0) {
      o = vec3u(o.xy + step, o.z + 1u);
    } else {
      o = bcastOffsets(i + 1u, 2u, p.shape, p.sa, p.sb);
    }
  }
}


// ==== elementwise.unary
// Elementwise kernels. The launcher fills in the op as a WGSL expression (tanh_(x)), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
@group(0) @binding(0) var<storage, read> X: array<S>;
@group(0) @binding(1) var<storage, read_write> Y: array<S>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let x = T(X[i]);
  let s = p.s;
  Y[i] = S(tanh_(x));
}


// ==== elementwise.unary
// Elementwise kernels. The launcher fills in the op as a WGSL expression (x * s), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
@group(0) @binding(0) var<storage, read> X: array<S>;
@group(0) @binding(1) var<storage, read_write> Y: array<S>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let x = T(X[i]);
  let s = p.s;
  Y[i] = S(x * s);
}


// ==== elementwise.binary
// Elementwise kernels. The launcher fills in the op as a WGSL expression (a + b), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
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
  Y[i] = S(a + b);
}


// ==== reduce.sum_cols
// Reduction kernels. A reduction over one contiguous run of axes sees its input as
// [outer, len, inner] and reduces the middle dim; each pass writes [outer, chunks, inner]
// partial results and the launcher repeats passes until one chunk is left. Every sum is a
// fixed-order tree or short sequential run (no atomics): deterministic and accurate.
//   sum_cols:   one invocation sums up to 128 rows of one column; a long axis takes several
//               passes (4M elements to one: 4 passes). No workgroup tree in shared memory:
//               barriers are expensive on llvmpipe.
//   arg_cols:   the same for max/min with the index (lowest index wins ties).
//   max_grad:   scatters g to the recorded argmax position (no atomics: one output per thread).
//   broadcast:  y[i] = x[strided offset of i] * scale (backward of sum/mean, and expand).


// Invocation c of a column takes rows c, c + chunks, c + 2 chunks, ...: neighbouring
// invocations read neighbouring words even when inner == 1 (coalesced on a GPU, vector loads
// on a CPU), and each adds at most ~64 values. IN and OUT: f32, or f16 for an f16 sum (the
// additions stay f32; an f16 result is rounded once, when the last pass writes it, and the
// earlier passes of a long f16 sum read f16 and write f32 partial sums).
struct Params { outer: u32, len: u32, inner: u32, chunks: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.outer * p.chunks * p.inner) { return; }
  let k = i % p.inner;
  let t = i / p.inner;
  let c = t % p.chunks;
  var off = ((t / p.chunks) * p.len + c) * p.inner + k;
  let stride = p.chunks * p.inner;
  // two accumulators halve the sequential rounding chain
  var acc0 = 0.0;
  var acc1 = 0.0;
  var r = c;
  for (; r + p.chunks < p.len; r += 2u * p.chunks) {
    acc0 += f32(X[off]);
    acc1 += f32(X[off + stride]);
    off += 2u * stride;
  }
  if (r < p.len) { acc0 += f32(X[off]); }
  Y[i] = f32((acc0 + acc1) * p.scale);
}


// ==== fill
// Fills a buffer with one 32-bit pattern (the bits of an f32, i32 or u32 value).
struct Params { n: u32, bits: u32 }

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { out[i] = p.bits; }
}

// ==== reduce.broadcast
// Reduction kernels. A reduction over one contiguous run of axes sees its input as
// [outer, len, inner] and reduces the middle dim; each pass writes [outer, chunks, inner]
// partial results and the launcher repeats passes until one chunk is left. Every sum is a
// fixed-order tree or short sequential run (no atomics): deterministic and accurate.
//   sum_cols:   one invocation sums up to 128 rows of one column; a long axis takes several
//               passes (4M elements to one: 4 passes). No workgroup tree in shared memory:
//               barriers are expensive on llvmpipe.
//   arg_cols:   the same for max/min with the index (lowest index wins ties).
//   max_grad:   scatters g to the recorded argmax position (no atomics: one output per thread).
//   broadcast:  y[i] = x[strided offset of i] * scale (backward of sum/mean, and expand).


// Dims and strides of the collapsed output shape sit in two vec4u each (a uniform array's
// stride must be 16 bytes); RANK is a constant so the loops unroll. S: f32, or f16 (the product
// in f32, rounded once).
struct Params { n: u32, scale: f32, _p0: u32, _p1: u32, shape: array<vec4u, 2>, sx: array<vec4u, 2> }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// Offset in x of output element i, and i's coordinate along the last dim.
fn offsetOf(i: u32) -> vec2u {
  var rem = i;
  var off = 0u;
  var c0 = 0u;
  for (var d = 1u; d > 0u; d--) {
    let k = d - 1u;
    let dim = p.shape[k / 4u][k % 4u];
    let c = rem % dim;
    if (d == 1u) { c0 = c; }
    off += c * p.sx[k / 4u][k % 4u];
    rem = rem / dim;
  }
  return vec2u(off, c0);
}

// Each invocation writes PER consecutive outputs, stepping along the last dim (integer
// division has no SIMD form on CPUs).
const PER = 16u;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = offsetOf(i0);
  let last = 1u - 1u;
  let step = p.sx[last / 4u][last % 4u];
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    Y[i] = f32(f32(X[o.x]) * p.scale);
    if (o.y + 1u < dim0) {
      o = vec2u(o.x + step, o.y + 1u);
    } else {
      o = offsetOf(i + 1u);
    }
  }
}


// ==== elementwise.unary_grad
// Elementwise kernels. The launcher fills in the op as a WGSL expression (g * (1.0 - v * v)), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
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
  Y[i] = S(g * (1.0 - v * v));
}


// ==== elementwise.ternary_bcast
// Elementwise kernels. The launcher fills in the op as a WGSL expression (-(g * (a / b)) / b), the type T
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


alias T = f32;
alias S = f32;
const PER = 16u;
struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, shape: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2> }
@group(0) @binding(0) var<storage, read> G: array<S>;
@group(0) @binding(1) var<storage, read> A: array<S>;
@group(0) @binding(2) var<storage, read> B: array<S>;
@group(0) @binding(3) var<storage, read_write> Y: array<S>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * 256u) * PER;
  if (i0 >= p.n) { return; }
  var o = bcastOffsets(i0, 2u, p.shape, p.sa, p.sb);
  let last = 2u - 1u;
  let step = vec2u(p.sa[last / 4u][last % 4u], p.sb[last / 4u][last % 4u]);
  let dim0 = p.shape[last / 4u][last % 4u];
  for (var i = i0; i < min(i0 + PER, p.n); i++) {
    let g = T(G[i]);
    let a = T(A[o.x]);
    let b = T(B[o.y]);
    Y[i] = S(-(g * (a / b)) / b);
    if (o.z + 1u < dim0) {
      o = vec3u(o.xy + step, o.z + 1u);
    } else {
      o = bcastOffsets(i + 1u, 2u, p.shape, p.sa, p.sb);
    }
  }
}


// ==== elementwise.binary
// Elementwise kernels. The launcher fills in the op as a WGSL expression (a * b), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
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
  Y[i] = S(a * b);
}


// ==== elementwise.unary_grad
// Elementwise kernels. The launcher fills in the op as a WGSL expression (select(T(0.0), g, v > T(0.0))), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
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
  Y[i] = S(select(T(0.0), g, v > T(0.0)));
}


// ==== elementwise.binary
// Elementwise kernels. The launcher fills in the op as a WGSL expression (max(a, b)), the type T
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


alias T = vec4f;
alias S = vec4f;
struct Params { n: u32, s: f32 }
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
  Y[i] = S(max(a, b));
}

