// Elementwise ops with autograd: unary math (relu, exp, log, neg, sqrt, tanh, sigmoid, abs,
// square, scale, addScalar) and NumPy-broadcasting binary ops (add, sub, mul, div, maximum,
// minimum) where either operand may be a plain number (passed in the uniform, no upload).
// Launches shaders/elementwise.wgsl: one template per arity with the op's WGSL expression
// filled in, so every op is one kernel and one pass over memory. Each backward rule is a single
// fused kernel too (gradient and saved tensor in, input gradient out) plus, for broadcast
// inputs, a sum down to the input's shape. Ops take f32 or f16 tensors (both operands of one
// type) and return that type; f16 kernels load f16, compute in f32 and round once at the store
// (each section is templated on its storage type), and the sums of broadcast gradients
// accumulate in f32 (reduce.ts).
import { record, registerGradAdd } from './autograd.js';
import { floatKernel } from './float_kernel.js';
import { flags } from './flags.js';
import { dimWords, paramBlock } from './kernel.js';
import { grid1d, rt } from './runtime.js';
import { type FloatDType, Tensor, empty, full } from './tensor.js';
import { broadcastLayout, broadcastPerInvocation, broadcastShapes, sumToShape } from './reduce.js';

/** Same-shape sections (unary, unary_grad, binary, ternary): n items (T elements), s the op's scalar. */
const MAP_PARAMS = paramBlock({ n: 'u32', s: 'f32' });
/** Broadcast sections: n outputs; the collapsed shape and each input's strides, 8 dims each. */
const BCAST_PARAMS = paramBlock({
  n: 'u32', _p0: 'u32', _p1: 'u32', _p2: 'u32', shape: 'array<vec4u, 2>', sa: 'array<vec4u, 2>', sb: 'array<vec4u, 2>',
});

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, k) => d === b[k]);

/** The element type shared by every tensor of one kernel (ops never mix f32 and f16). */
function floatTypeOf(op: string, ts: Tensor[]): FloatDType {
  const dtype = ts[0].dtype;
  for (const t of ts) {
    if (t.dtype !== dtype) throw new Error(`${op}: dtypes differ: ${ts.map((x) => x.describe()).join(' and ')}`);
  }
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`${op}: expected f32 or f16, got ${ts[0].describe()}`);
  return dtype;
}

/**
 * Same-shape kernels: `inputs` and the output all have `shape`. They run on vec4s (four
 * elements per invocation, several times faster on a CPU device) whenever every buffer holds
 * whole vec4s, which pool buffers (16-byte multiples) always do; the few padding elements
 * past the end are read and written like the rest, and nothing reads them.
 */
function mapRaw(section: 'unary' | 'unary_grad' | 'binary' | 'ternary', expr: string, inputs: Tensor[], shape: readonly number[], s = 0): Tensor {
  const dtype = floatTypeOf(section, inputs);
  const y = empty(shape, dtype);
  if (y.size === 0) return y;
  mapDispatch(section, { EXPR: expr }, inputs, [y], dtype, s);
  return y;
}

/** Launches a same-shape section over `inputs` into `outputs` (non-empty, of one size). */
function mapDispatch(section: string, exprs: Record<string, string>, inputs: Tensor[], outputs: Tensor[], dtype: FloatDType, s: number): void {
  const size = outputs[0].size;
  const vec4Bytes = Math.ceil(size / 4) * (dtype === 'f16' ? 8 : 16);
  const w = [...inputs, ...outputs].every((t) => t.buffer.size >= vec4Bytes) ? 4 : 1;
  const items = Math.ceil(size / w);
  const T = w === 4 ? 'vec4f' : 'f32';
  // S is the storage type, T the type the expression computes in
  const S = dtype === 'f32' ? T : w === 4 ? 'vec4<f16>' : 'f16';
  const k = floatKernel('elementwise', section, dtype, { T, S, ...exprs }, MAP_PARAMS);
  rt().dispatch(k, [...inputs, ...outputs].map((t) => t.buffer), MAP_PARAMS.pack({ n: items, s }), grid1d(Math.ceil(items / 256)));
}

/** Broadcast kernels: a and b broadcast to `shape`; `g` (ternary) already has `shape`. */
function bcastRaw(op: string, expr: string, g: Tensor | null, a: Tensor, aShape: readonly number[], b: Tensor, bShape: readonly number[], shape: readonly number[]): Tensor {
  const dtype = floatTypeOf(op, g ? [g, a, b] : [a, b]);
  const y = empty(shape, dtype);
  if (y.size === 0) return y;
  const layout = broadcastLayout(op, shape, [aShape, bShape]);
  const u = BCAST_PARAMS.pack({ n: y.size, shape: dimWords(layout.shape), sa: dimWords(layout.strides[0]), sb: dimWords(layout.strides[1]) });
  const section = g ? 'ternary_bcast' : 'binary_bcast';
  const per = broadcastPerInvocation(rt().caps);
  const k = floatKernel('elementwise', section, dtype, { RANK: layout.shape.length, PER: per, S: dtype, EXPR: expr }, BCAST_PARAMS);
  const buffers = [...(g ? [g.buffer] : []), a.buffer, b.buffer, y.buffer];
  rt().dispatch(k, buffers, u, grid1d(Math.ceil(y.size / (256 * per))));
  return y;
}

/** `expr` over (g, a, b) for the output shape, a and b broadcasting to it. */
function gradRaw(op: string, expr: string, g: Tensor, a: Tensor, b: Tensor): Tensor {
  if (sameShape(a.shape, g.shape) && sameShape(b.shape, g.shape)) return mapRaw('ternary', expr, [g, a, b], g.shape);
  return bcastRaw(op, expr, g, a, a.shape, b, b.shape, g.shape);
}

/** g summed down to `shape` (g itself when it already has that shape). */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  return sameShape(g.shape, shape) ? g : sumToShape(g, shape);
}

function checkFloat(op: string, x: Tensor): void {
  floatTypeOf(op, [x]);
}

// ---- Unary ops

/** How a unary op's gradient is computed: a fused kernel over (g, v, s) with v the saved input or output. */
type UnaryGrad = { save: 'x' | 'y'; expr: string } | ((g: Tensor) => Tensor);

function unaryOp(op: string, x: Tensor, expr: string, grad: UnaryGrad, s = 0): Tensor {
  checkFloat(op, x);
  const y = mapRaw('unary', expr, [x], x.shape, s);
  if (typeof grad === 'function') return record(y, op, [x], [], (g) => [grad(g)]);
  return record(y, op, [x], [grad.save === 'x' ? x : y], (g, [v]) => [mapRaw('unary_grad', grad.expr, [g, v], g.shape, s)]);
}

/** relu's gradient from g and v, relu's input or output (both are positive at the same places). */
const RELU_GRAD = 'select(T(0.0), g, v > T(0.0))';
const RELU_EXPR = 'max(x, T(0.0))';

/** max(x, 0). Gradient 0 at x = 0. */
export function relu(x: Tensor): Tensor {
  return unaryOp('relu', x, RELU_EXPR, { save: 'x', expr: RELU_GRAD });
}

/**
 * g * (y > 0), a fresh tensor: the gradient through a ReLU from its output y, with relu's own
 * backward kernel (conv and matmul fuse a ReLU into their epilogue and differentiate it here).
 */
export function reluGradFromOutput(g: Tensor, y: Tensor): Tensor {
  return mapRaw('unary_grad', RELU_GRAD, [g, y], g.shape);
}

export function exp(x: Tensor): Tensor {
  return unaryOp('exp', x, 'exp(x)', { save: 'y', expr: 'g * v' });
}

/** Natural log; on this device log(0) = -Infinity and log(x < 0) = NaN (WGSL leaves them undefined). */
export function log(x: Tensor): Tensor {
  return unaryOp('log', x, 'log(x)', { save: 'x', expr: 'g / v' });
}

export function neg(x: Tensor): Tensor {
  return unaryOp('neg', x, '-x', (g) => neg(g));
}

/** Square root; the gradient at 0 is +Infinity (times g). */
export function sqrt(x: Tensor): Tensor {
  return unaryOp('sqrt', x, 'sqrt(x)', { save: 'y', expr: 'g * 0.5 / v' });
}

export function tanh(x: Tensor): Tensor {
  return unaryOp('tanh', x, 'tanh_(x)', { save: 'y', expr: 'g * (1.0 - v * v)' });
}

export function sigmoid(x: Tensor): Tensor {
  return unaryOp('sigmoid', x, 'sigmoid_(x)', { save: 'y', expr: 'g * v * (1.0 - v)' });
}

/** |x|. Gradient sign(x), 0 at x = 0. */
export function abs(x: Tensor): Tensor {
  return unaryOp('abs', x, 'abs(x)', { save: 'x', expr: 'g * sign(v)' });
}

export function square(x: Tensor): Tensor {
  return unaryOp('square', x, 'x * x', { save: 'x', expr: '2.0 * g * v' });
}

/** x * s for a number s. */
export function scale(x: Tensor, s: number): Tensor {
  return unaryOp('scale', x, 'x * s', (g) => scale(g, s), s);
}

/** x + s for a number s. */
export function addScalar(x: Tensor, s: number): Tensor {
  return unaryOp('addScalar', x, 'x + s', (g) => g, s);
}

// ---- Binary ops

export type Operand = Tensor | number;

interface BinarySpec {
  /** Tensor-tensor expression over a, b. */
  tt: string;
  /** Tensor-number (x op s) and number-tensor (s op x) expressions. */
  ts: string;
  st: string;
  /** Gradients for (a, b) of tensor-tensor ops from the output gradient and the saved a, b. */
  grad: (g: Tensor, a: Tensor | undefined, b: Tensor | undefined, need: [boolean, boolean]) => [Tensor | null, Tensor | null];
  /** Which of a, b the tensor-tensor gradient reads (given which inputs need gradients). */
  saves: (need: [boolean, boolean]) => [boolean, boolean];
  /** Gradient of x for `x op s` (xFirst) or `s op x`; v is the saved x when `scalarSave`. */
  scalarGrad: (g: Tensor, s: number, xFirst: boolean, v: Tensor | undefined) => Tensor;
  scalarSave: (xFirst: boolean) => boolean;
}

function binaryOp(op: string, a: Operand, b: Operand, spec: BinarySpec): Tensor {
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`${op}: at least one operand must be a tensor`);
  if (typeof a === 'number' || typeof b === 'number') {
    const xFirst = typeof b === 'number';
    const x = (xFirst ? a : b) as Tensor;
    const s = (xFirst ? b : a) as number;
    checkFloat(op, x);
    const y = mapRaw('unary', xFirst ? spec.ts : spec.st, [x], x.shape, s);
    const saveX = spec.scalarSave(xFirst);
    return record(y, op, [x], saveX ? [x] : [], (g, saved) => [spec.scalarGrad(g, s, xFirst, saved[0])]);
  }
  floatTypeOf(op, [a, b]);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const y = sameShape(a.shape, b.shape)
    ? mapRaw('binary', spec.tt, [a, b], shape)
    : bcastRaw(op, spec.tt, null, a, a.shape, b, b.shape, shape);
  const need: [boolean, boolean] = [a.requiresGrad, b.requiresGrad];
  const [saveA, saveB] = spec.saves(need);
  const save = [...(saveA ? [a] : []), ...(saveB ? [b] : [])];
  return record(y, op, [a, b], save, (g, saved) => {
    const sa = saveA ? saved[0] : undefined;
    const sb = saveB ? saved[saveA ? 1 : 0] : undefined;
    return spec.grad(g, sa, sb, need);
  });
}

/** Wraps a per-input gradient (on the output shape) and sums it down to the input's shape. */
function toShape(g: Tensor, full: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(full.shape, shape)) return full;
  const r = sumToShape(full, shape);
  if (full !== g) full.dispose();
  return r;
}

const ADD_EXPR = 'a + b';

/** a + b with broadcasting; either may be a number. */
export function add(a: Operand, b: Operand): Tensor {
  const aShape = a instanceof Tensor ? a.shape : [];
  const bShape = b instanceof Tensor ? b.shape : [];
  return binaryOp('add', a, b, {
    tt: ADD_EXPR,
    ts: 'x + s',
    st: 's + x',
    saves: () => [false, false],
    grad: (g, _a, _b, need) => [need[0] ? reduceTo(g, aShape) : null, need[1] ? reduceTo(g, bShape) : null],
    scalarGrad: (g) => g,
    scalarSave: () => false,
  });
}

/**
 * [a + b, relu(a + b)] from one kernel where a and b have one shape and flag `fuse` is on (a
 * residual add and the ReLU after it), else from add and relu. Each output is recorded with
 * its op's own backward rule, so values and gradients are bitwise those of add then relu.
 */
export function addRelu(a: Tensor, b: Tensor): [Tensor, Tensor] {
  if (!flags().fuse || !sameShape(a.shape, b.shape)) {
    const y = add(a, b);
    return [y, relu(y)];
  }
  const dtype = floatTypeOf('addRelu', [a, b]);
  const y = empty(a.shape, dtype);
  const z = empty(a.shape, dtype);
  if (y.size > 0) mapDispatch('binary_unary', { EXPR: ADD_EXPR, EXPR2: RELU_EXPR }, [a, b], [y, z], dtype, 0);
  record(y, 'add', [a, b], [], (g) => [g, g]);
  return [y, record(z, 'relu', [y], [y], (g, [v]) => [reluGradFromOutput(g, v)])];
}

/** a - b with broadcasting; either may be a number. */
export function sub(a: Operand, b: Operand): Tensor {
  const aShape = a instanceof Tensor ? a.shape : [];
  const bShape = b instanceof Tensor ? b.shape : [];
  return binaryOp('sub', a, b, {
    tt: 'a - b',
    ts: 'x - s',
    st: 's - x',
    saves: () => [false, false],
    grad: (g, _a, _b, need) => {
      let gb: Tensor | null = null;
      if (need[1]) {
        const r = reduceTo(g, bShape);
        gb = neg(r);
        if (r !== g) r.dispose();
      }
      return [need[0] ? reduceTo(g, aShape) : null, gb];
    },
    scalarGrad: (g, _s, xFirst) => (xFirst ? g : neg(g)),
    scalarSave: () => false,
  });
}

/** a * b with broadcasting; either may be a number. */
export function mul(a: Operand, b: Operand): Tensor {
  const aShape = a instanceof Tensor ? a.shape : [];
  const bShape = b instanceof Tensor ? b.shape : [];
  return binaryOp('mul', a, b, {
    tt: 'a * b',
    ts: 'x * s',
    st: 's * x',
    // da = g * b needs b; db = g * a needs a
    saves: (need) => [need[1], need[0]],
    grad: (g, a, b, need) => [
      need[0] ? toShape(g, mul(g, b!), aShape) : null,
      need[1] ? toShape(g, mul(g, a!), bShape) : null,
    ],
    scalarGrad: (g, s) => scale(g, s),
    scalarSave: () => false,
  });
}

/** a / b with broadcasting; either may be a number. */
export function div(a: Operand, b: Operand): Tensor {
  const aShape = a instanceof Tensor ? a.shape : [];
  const bShape = b instanceof Tensor ? b.shape : [];
  return binaryOp('div', a, b, {
    tt: 'a / b',
    ts: 'x / s',
    st: 's / x',
    saves: (need) => [need[1], true],
    grad: (g, a, b, need) => [
      need[0] ? toShape(g, div(g, b!), aShape) : null,
      // -g a / b^2, ordered so that it neither overflows nor underflows early
      need[1] ? toShape(g, gradRaw('div.grad_b', '-(g * (a / b)) / b', g, a!, b!), bShape) : null,
    ],
    // d(x/s)/dx = 1/s; d(s/x)/dx = -s/x^2
    scalarGrad: (g, s, xFirst, v) =>
      xFirst ? mapRaw('unary', 'x / s', [g], g.shape, s) : mapRaw('unary_grad', '-(g * (s / v)) / v', [g, v!], g.shape, s),
    scalarSave: (xFirst) => !xFirst,
  });
}

function minMax(op: 'maximum' | 'minimum', a: Operand, b: Operand): Tensor {
  const aShape = a instanceof Tensor ? a.shape : [];
  const bShape = b instanceof Tensor ? b.shape : [];
  const f = op === 'maximum' ? 'max' : 'min';
  // ties send the whole gradient to a (and to the tensor operand when the other is a number)
  const aWins = op === 'maximum' ? 'a >= b' : 'a <= b';
  const bWins = op === 'maximum' ? 'b > a' : 'b < a';
  const xWins = op === 'maximum' ? 'v >= T(s)' : 'v <= T(s)';
  return binaryOp(op, a, b, {
    tt: `${f}(a, b)`,
    ts: `${f}(x, T(s))`,
    st: `${f}(T(s), x)`,
    saves: () => [true, true],
    grad: (g, a, b, need) => [
      need[0] ? toShape(g, gradRaw(`${op}.grad_a`, `select(T(0.0), g, ${aWins})`, g, a!, b!), aShape) : null,
      need[1] ? toShape(g, gradRaw(`${op}.grad_b`, `select(T(0.0), g, ${bWins})`, g, a!, b!), bShape) : null,
    ],
    scalarGrad: (g, s, _xFirst, v) => mapRaw('unary_grad', `select(T(0.0), g, ${xWins})`, [g, v!], g.shape, s),
    scalarSave: () => true,
  });
}

/** Elementwise max with broadcasting; on ties the gradient goes to a. */
export function maximum(a: Operand, b: Operand): Tensor {
  return minMax('maximum', a, b);
}

/** Elementwise min with broadcasting; on ties the gradient goes to a. */
export function minimum(a: Operand, b: Operand): Tensor {
  return minMax('minimum', a, b);
}

export function onesLike(x: Tensor): Tensor {
  return full(x.shape, 1, x.dtype);
}

export function zerosLike(x: Tensor): Tensor {
  return full(x.shape, 0, x.dtype);
}

// autograd accumulates gradients with our add (keeps autograd.ts free of kernel imports)
registerGradAdd((a, b) => add(a, b));
