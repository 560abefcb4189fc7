// Gated PixelCNN: masks, masked convolution, raster-order causality (exact zeros) with no
// blind spot, and shapes/parameter count.
import t from 'tap';
import { gpu, assertClose, gradcheck } from './helpers.js';
import { backward } from '../engine/autograd.js';
import { conv2d } from '../engine/conv.js';
import { Rng } from '../engine/random.js';
import { tensor, tidy } from '../engine/tensor.js';
import { PixelCnn, causalMask, countPixelCnnParams, maskedConv2d, resolvePixelCnnConfig, stackMask } from '../model/pixelcnn.js';

await gpu(t);

t.test('masks', async (t) => {
  // 3x3: rows above the centre, left of the centre; the centre only for B
  t.same([...causalMask(3, 3, 'A')], [1, 1, 1, 1, 0, 0, 0, 0, 0]);
  t.same([...causalMask(3, 3, 'B')], [1, 1, 1, 1, 1, 0, 0, 0, 0]);
  const a5 = causalMask(5, 5, 'A');
  t.equal(a5.reduce((s, v) => s + v, 0), 12, '5x5 mask A keeps 12 taps');
  t.equal(causalMask(5, 5, 'B').reduce((s, v) => s + v, 0), 13);
  // shaped kernels of the stacks: vertical (k/2+1, k), horizontal (1, k/2+1)
  t.same([...stackMask('vertical', 3, 'B')], [1, 1, 1, 1, 1, 1]);
  t.same([...stackMask('vertical', 3, 'A')], [1, 1, 1, 0, 0, 0]);
  t.same([...stackMask('horizontal', 3, 'B')], [1, 1]);
  t.same([...stackMask('horizontal', 7, 'A')], [1, 1, 1, 0]);
  t.equal(stackMask('vertical', 7, 'A').length, 28);
});

t.test('maskedConv2d equals conv2d of the masked weight; masked taps get zero gradient', async (t) => {
  const rng = new Rng(5);
  const xs = [2, 3, 5, 6];
  const ws = [4, 3, 3, 3];
  const x = rng.uniformArray(2 * 3 * 5 * 6, -1, 1);
  const w = rng.uniformArray(4 * 3 * 9, -1, 1);
  const m = causalMask(3, 3, 'A');
  const wm = w.map((v, i) => v * m[i % 9]);
  const got = tidy(() => maskedConv2d(tensor(x, xs), tensor(w, ws), tensor(m, [3, 3]), null, { padding: 1 }));
  const want = tidy(() => conv2d(tensor(x, xs), tensor(wm, ws), null, { padding: 1 }));
  assertClose(t, await got.read(), await want.read(), { rtol: 1e-5, atol: 1e-6 }, 'forward');
  const wt = tensor(w, ws).requireGrad();
  const y = maskedConv2d(tensor(x, xs), wt, tensor(m, [3, 3]), null, { padding: 1 });
  backward(y, { grad: tensor(rng.uniformArray(y.size, -1, 1), y.shape) });
  const gw = (await wt.grad!.read()) as Float32Array;
  let zeroOnMasked = true;
  let nonzeroElsewhere = 0;
  for (let i = 0; i < gw.length; i++) {
    if (m[i % 9] === 0 && gw[i] !== 0) zeroOnMasked = false;
    if (m[i % 9] === 1 && gw[i] !== 0) nonzeroElsewhere++;
  }
  t.ok(zeroOnMasked, 'masked taps have exactly zero gradient');
  t.equal(nonzeroElsewhere, 4 * 3 * 4, 'every kept tap has a gradient');
  const failures = await gradcheck(([xx, ww]) => maskedConv2d(xx, ww, tensor(causalMask(3, 3, 'B'), [3, 3]), null, { padding: 1 }), [
    { data: rng.uniformArray(1 * 2 * 4 * 3, -1, 1), shape: [1, 2, 4, 3] },
    { data: rng.uniformArray(3 * 2 * 9, -1, 1), shape: [3, 2, 3, 3] },
  ]);
  t.same(failures, []);
  t.throws(() => maskedConv2d(tensor(x, xs), tensor(w, ws), tensor([1, 1], [2]), null), /mask \[2\] does not fit weight \[4, 3, 3, 3\]/);
});

t.test('causality: logits at p depend on exactly the inputs before p, no blind spot', async (t) => {
  const cfg = { numCodes: 7, width: 4, layers: 2, firstKernel: 5, kernel: 3, headWidth: 6 };
  const model = new PixelCnn(cfg, { seed: 3 });
  const rng = new Rng(11);
  const [B, H, W] = [2, 6, 7];
  const codes = tensor(Uint32Array.from({ length: B * H * W }, () => rng.int(cfg.numCodes)), [B, H, W], 'u32');
  const emb = tidy(() => model.embed(codes));
  const embData = (await emb.read()) as Float32Array;
  const C = cfg.width;
  for (const [pi, pj] of [[3, 3], [0, 4], [2, 0], [5, 6], [1, 6]]) {
    const x = tensor(embData, [B, C, H, W]).requireGrad();
    const logits = model.forwardEmbedded(x);
    // seed: random weights on every class of batch item 1 at position (pi, pj)
    const seed = new Float32Array(logits.size);
    for (let k = 0; k < cfg.numCodes; k++) seed[((1 * cfg.numCodes + k) * H + pi) * W + pj] = rng.next() + 0.5;
    backward(logits, { grad: tensor(seed, logits.shape) });
    const g = (await x.grad!.read()) as Float32Array;
    const mag = (b: number, i: number, j: number) => {
      let s = 0;
      for (let c = 0; c < C; c++) s += Math.abs(g[((b * C + c) * H + i) * W + j]);
      return s;
    };
    let leak: string | null = null;
    for (let b = 0; b < B; b++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
      const later = i * W + j >= pi * W + pj;
      if ((b === 0 || later) && mag(b, i, j) !== 0 && !leak) leak = `batch ${b}, (${i}, ${j}): ${mag(b, i, j)}`;
    }
    t.equal(leak, null, `p = (${pi}, ${pj}): zero gradient at p, after p and in the other sample`);
    const mustSee: [number, number][] = [];
    if (pj > 0) mustSee.push([pi, pj - 1]); // left
    if (pi > 0) mustSee.push([pi - 1, pj], [pi - 1, Math.min(W - 1, pj + 1)], [pi - 1, Math.max(0, pj - 1)]); // above, above-right, above-left
    if (pi > 0 && pj + 2 < W) mustSee.push([pi - 1, pj + 2]); // the classic blind-spot region
    for (const [i, j] of mustSee) t.ok(mag(1, i, j) > 0, `p = (${pi}, ${pj}) sees (${i}, ${j})`);
    x.dispose();
  }
  codes.dispose();
  model.dispose();
});

t.test('shapes, parameter count, config validation', async (t) => {
  const cfg = resolvePixelCnnConfig({ numCodes: 512 });
  t.same([cfg.width, cfg.layers, cfg.firstKernel, cfg.kernel], [128, 15, 7, 3]);
  const small = { numCodes: 5, width: 2, layers: 1, firstKernel: 3, kernel: 3, headWidth: 3 };
  const m = new PixelCnn(small);
  const total = m.parameters().reduce((s, p) => s + p.size, 0);
  t.equal(countPixelCnnParams(resolvePixelCnnConfig(small)), total);
  const logits = tidy(() => m.forward(tensor(new Uint32Array(3 * 4 * 5), [3, 4, 5], 'u32')));
  t.same(logits.shape, [3, 5, 4, 5]);
  t.ok([...((await logits.read()) as Float32Array)].every(Number.isFinite));
  t.throws(() => resolvePixelCnnConfig({ numCodes: 5, kernel: 4 }), /kernels must be odd/);
  t.throws(() => m.forward(tensor([1, 2], [2])), /expected integer codes \[B, H, W\]/);
  m.dispose();
});
