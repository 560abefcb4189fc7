// Elementwise ops against float64 CPU references on awkward shapes, their gradients by finite
// differences, and their error messages.
import t from 'tap';
import { assertClose, gpu, gradcheck } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { Storage, Tensor, empty, tensor, type DType } from '../engine/tensor.js';
import * as E from '../engine/elementwise.js';
import { refBinary, refOps, refUnary, size, values, type Shape } from './ref/elementwise.js';
import { BINARY, PAIRS, SHAPES, UNARY, awayFrom, type BinaryName, type UnaryName } from './cases/elementwise.js';

const rt = await gpu(t);

const read = async (x: Tensor) => Float64Array.from(await x.read());

t.test('unary ops match float64 on awkward shapes', async (t) => {
  for (const [name, spec] of Object.entries(UNARY) as [UnaryName, (typeof UNARY)[UnaryName]][]) {
    for (const [si, shape] of SHAPES.entries()) {
      const data = values(size(shape), 10 * si + name.length, spec.low, spec.high);
      const x = tensor(data, shape);
      const y = E[name](x);
      t.same(y.shape, shape, `${name} keeps shape [${shape}]`);
      assertClose(t, await read(y), refUnary(data, refOps[name]), spec, `${name} [${shape}]`);
      x.dispose();
      y.dispose();
    }
  }
});

t.test('tanh and sigmoid keep relative accuracy near 0 and saturate cleanly', async (t) => {
  const xs = [1e-30, -1e-8, 1e-4, -0.01, 0.2499, 0.25, 0.2501, 0.7, 5, -9, 10, 20, 50, 90, -90, 1e4, -1e4];
  const x = tensor(xs);
  assertClose(t, await read(E.tanh(x)), xs.map(Math.tanh), { rtol: 2e-6, atol: 0 }, 'tanh');
  assertClose(t, await read(E.sigmoid(x)), xs.map(refOps.sigmoid), { rtol: 4e-6, atol: 1e-37 }, 'sigmoid');
  // the reference rounded to f32: exp(90) overflows to Infinity there too
  assertClose(t, await read(E.exp(x)), xs.map((v) => Math.fround(Math.exp(v))), { rtol: 4e-6, atol: 1e-37 }, 'exp (over- and underflow; subnormals may flush to 0)');
});

t.test('log and sqrt at the edges of their domains', async (t) => {
  const xs = [0, 1.5e-38, 1e-30, 1e-6, 1, 3e38]; // no subnormals: devices may flush them
  const x = tensor(xs);
  assertClose(t, await read(E.log(x)), xs.map(Math.log), { rtol: 2e-6, atol: 0 }, 'log, log(0) = -Infinity');
  assertClose(t, await read(E.sqrt(x)), xs.map(Math.sqrt), { rtol: 3e-7, atol: 0 }, 'sqrt, sqrt(0) = 0');
  // outside the domain WGSL promises nothing; this device gives NaN, as IEEE does
  const neg = tensor([-1, -1e-20]);
  t.ok([...(await E.log(neg).read())].every(Number.isNaN), 'log of negatives is NaN');
  t.ok([...(await E.sqrt(neg).read())].every(Number.isNaN), 'sqrt of negatives is NaN');
});

t.test('scale and addScalar', async (t) => {
  const data = values(13, 3);
  const x = tensor(data, [13]);
  assertClose(t, await read(E.scale(x, -2.5)), refUnary(data, (v) => v * -2.5), { rtol: 6e-8, atol: 0 }, 'scale');
  assertClose(t, await read(E.addScalar(x, 0.75)), refUnary(data, (v) => v + 0.75), { rtol: 6e-8, atol: 6e-8 }, 'addScalar');
});

t.test('binary ops broadcast like NumPy and match float64', async (t) => {
  for (const [name, f] of Object.entries(BINARY) as [BinaryName, (a: number, b: number) => number][]) {
    for (const [pi, [as, bs]] of PAIRS.entries()) {
      const a = values(size(as), pi + 1, -2, 2);
      // keep divisors away from 0 so relative error stays meaningful
      const b = values(size(bs), pi + 50, name === 'div' ? 0.5 : -2, 2);
      const ta = tensor(a, as);
      const tb = tensor(b, bs);
      const y = E[name](ta, tb);
      const want = refBinary(a, as, b, bs, f);
      t.same(y.shape, want.shape, `${name} [${as}] [${bs}] shape`);
      // correctly rounded, except division: WGSL allows 2.5 ULP (NVIDIA uses it)
      assertClose(t, await read(y), want.data, { rtol: name === 'div' ? 3e-7 : 6e-8, atol: 0 }, `${name} [${as}] [${bs}]`);
      ta.dispose();
      tb.dispose();
      y.dispose();
    }
  }
});

t.test('a number on either side of a binary op', async (t) => {
  const data = values(11, 7, 0.5, 3);
  const x = tensor(data, [11]);
  for (const [name, f] of Object.entries(BINARY) as [BinaryName, (a: number, b: number) => number][]) {
    const s = 1.75;
    const tol = { rtol: name === 'div' ? 3e-7 : 6e-8, atol: 0 };
    assertClose(t, await read(E[name](x, s)), refUnary(data, (v) => f(v, s)), tol, `${name}(x, ${s})`);
    assertClose(t, await read(E[name](s, x)), refUnary(data, (v) => f(s, v)), tol, `${name}(${s}, x)`);
  }
  t.throws(() => E.add(1 as unknown as Tensor, 2), /add: at least one operand must be a tensor/);
});

t.test('onesLike and zerosLike', async (t) => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  t.same([...(await E.onesLike(x).read())], [1, 1, 1, 1, 1, 1]);
  t.same([...(await E.zerosLike(x).read())], [0, 0, 0, 0, 0, 0]);
  t.same(E.onesLike(x).shape, [2, 3]);
});

t.test('buffers not padded to whole vec4s use the scalar kernels, on a 2-D grid when large', async (t) => {
  // Pool buffers are 16-byte multiples, so ops normally run on vec4s. A tensor over an
  // exact-size buffer must take the scalar path; 65535 * 256 + 5 elements need more than
  // 65535 workgroups of 256, i.e. a grid split over x and y.
  const n = 65535 * 256 + 5;
  const mk = (dtype: DType = 'f32') => {
    const buf = rt.device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    return { buf, t: new Tensor(new Storage(buf, n * 4), [n], dtype) };
  };
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (i % 1999) - 999.5;
  const x = mk();
  rt.device.queue.writeBuffer(x.buf, 0, data);
  const y = E.relu(x.t);
  const z = E.add(x.t, x.t); // same-shape binary, scalar path
  const got = await y.read();
  const got2 = await z.read();
  let bad = -1;
  for (let i = 0; i < n && bad < 0; i++) if (got[i] !== Math.max(data[i], 0) || got2[i] !== 2 * data[i]) bad = i;
  t.equal(bad, -1, `every element of ${n} is right (first wrong: ${bad})`);
  y.dispose();
  z.dispose();
  x.buf.destroy();
});

t.test('errors name the op and both operands', async (t) => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = tensor([1, 2, 3, 4], [4]);
  t.throws(() => E.add(a, b), { message: 'add: shapes [2, 3] and [4] do not broadcast' });
  t.throws(() => E.mul(empty([2, 3, 1]), empty([4, 1])), { message: 'mul: shapes [2, 3, 1] and [4, 1] do not broadcast' });
  const i = tensor([1, 2, 3], [3], 'i32');
  const f = tensor([1, 2, 3], [3]);
  t.throws(() => E.sub(f, i), /sub: dtypes differ: Tensor #\d+ f32\[3\] and Tensor #\d+ i32\[3\]/);
  t.throws(() => E.exp(i), /exp: expected f32 or f16, got Tensor #\d+ i32\[3\]/);
  t.throws(() => E.div(i, 2), /div: expected f32/);
  // 9 alternating dims cannot be merged into the kernels' 8
  const s1 = [2, 1, 2, 1, 2, 1, 2, 1, 2];
  const s2 = [1, 2, 1, 2, 1, 2, 1, 2, 1];
  t.throws(() => E.add(empty(s1), empty(s2)), /add: broadcasting .* needs 9 dims, more than 8/);
  const d = tensor([1]);
  d.dispose();
  t.throws(() => E.relu(d), /was disposed/);
});

// ---- gradients

t.test('gradcheck: unary ops', async (t) => {
  const shape = [3, 5, 1];
  const n = size(shape);
  const cases: [string, (x: Tensor) => Tensor, Float32Array][] = [
    ['relu', E.relu, awayFrom(n, 1, -2, 2, [0])],
    ['exp', E.exp, values(n, 2, -2, 2)],
    ['log', E.log, values(n, 3, 0.3, 3)],
    ['neg', E.neg, values(n, 4)],
    ['sqrt', E.sqrt, values(n, 5, 0.3, 3)],
    ['tanh', E.tanh, values(n, 6, -2, 2)],
    ['sigmoid', E.sigmoid, values(n, 7, -4, 4)],
    ['abs', E.abs, awayFrom(n, 8, -2, 2, [0])],
    ['square', E.square, values(n, 9, -2, 2)],
    ['scale', (x) => E.scale(x, -1.5), values(n, 10)],
    ['addScalar', (x) => E.addScalar(x, 2), values(n, 11)],
  ];
  for (const [name, f, data] of cases) {
    t.same(await gradcheck(([x]) => f(x), [{ data, shape }]), [], name);
  }
  // a vec4-sized input and a scalar exercise both kernel widths
  t.same(await gradcheck(([x]) => E.tanh(x), [{ data: values(8, 12), shape: [2, 4] }]), [], 'tanh [2, 4]');
  t.same(await gradcheck(([x]) => E.log(x), [{ data: new Float32Array([1.7]), shape: [] }]), [], 'log scalar');
});

t.test('gradcheck: binary ops with broadcasting and numbers', async (t) => {
  const shapes: [Shape, Shape][] = [
    [[5], [5]],
    [[2, 1, 3], [4, 1]],
    [[4, 1], [2, 1, 3]],
    [[], [2, 3]],
    [[3, 1], [3]],
  ];
  for (const name of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const) {
    for (const [si, [as, bs]] of shapes.entries()) {
      const a = values(size(as), si + 1, -2, 2);
      let b = name === 'div' ? awayFrom(size(bs), si + 9, -2, 2, [0], 0.4) : values(size(bs), si + 9, -2, 2);
      if (name === 'maximum' || name === 'minimum') {
        // keep every pair that meets at least 2 * eps apart so no tie moves under the perturbation
        b = b.map((v) => Math.round(v * 4) / 4 + 0.125);
        for (let i = 0; i < a.length; i++) a[i] = Math.round(a[i] * 4) / 4;
      }
      const fails = await gradcheck(([x, y]) => E[name](x, y), [{ data: a, shape: [...as] }, { data: b, shape: [...bs] }]);
      t.same(fails, [], `${name} [${as}] [${bs}]`);
    }
    const x = awayFrom(6, 20, 0.5, 2, [1.3]);
    t.same(await gradcheck(([v]) => E[name](v, 1.3), [{ data: x, shape: [2, 3] }]), [], `${name}(x, 1.3)`);
    t.same(await gradcheck(([v]) => E[name](1.3, v), [{ data: x, shape: [2, 3] }]), [], `${name}(1.3, x)`);
  }
});

t.test('gradient rules at ties and kinks', async (t) => {
  const a = tensor([1, 2, 3, 0]).requireGrad();
  const b = tensor([1, 5, 3, -1]).requireGrad();
  backward(E.maximum(a, b), { grad: tensor([1, 1, 1, 1]) });
  t.same([...(await a.grad!.read())], [1, 0, 1, 1], 'maximum: ties go to a');
  t.same([...(await b.grad!.read())], [0, 1, 0, 0], 'maximum: b only where strictly larger');
  const x = tensor([-1, 0, 2]).requireGrad();
  backward(E.relu(x), { grad: tensor([5, 5, 5]) });
  t.same([...(await x.grad!.read())], [0, 0, 5], 'relu gradient is 0 at 0');
  const y = tensor([0, 4]).requireGrad();
  backward(E.sqrt(y), { grad: tensor([1, 1]) });
  t.same([...(await y.grad!.read())], [Infinity, 0.25], 'sqrt gradient at 0 is +Infinity');
});

t.test('autograd accumulates with add (registered at load)', async (t) => {
  const x = tensor([1, -2, 3]).requireGrad();
  const y = E.add(E.mul(x, x), E.mul(x, 2)); // d/dx = 2x + 2
  backward(y, { grad: tensor([1, 1, 1]) });
  t.same([...(await x.grad!.read())], [4, -2, 8]);
});
