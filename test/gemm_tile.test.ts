// The shared workgroup-memory GEMM tile (shaders/gemm_tile.wgsl) with hooks of a test kernel
// (plain row-major A [M, K] and B [K, N], both slots strided by 16, K reduced in two ranges
// split at an arbitrary k), under both staging orders of each side: against float64, and bit
// for bit against matmul's smem schedule, whose hooks differ (B-slots of adjacent columns) but
// whose per-element FMA order is the same. Also the register-tile emit helpers' text.
import t from 'tap';
import { assertBitwise, compare, gpu } from './helpers.js';
import { declareAccumulators, fmaChain, guarded, shared } from '../engine/emit_tile.js';
import { withGemmTile } from '../engine/gemm_tile.js';
import { kernel, paramBlock } from '../engine/kernel.js';
import { matmul } from '../engine/matmul.js';
import { Rng } from '../engine/random.js';
import { rt } from '../engine/runtime.js';
import { empty, tensor } from '../engine/tensor.js';

await gpu(t);

const PARAMS = paramBlock({ M: 'u32', N: 'u32', K: 'u32', split: 'u32' });

const tileKernel = (AK: boolean, BK: boolean) =>
  kernel('test.gemm_tile', { AK, BK }, () =>
    withGemmTile(`
${PARAMS.wgsl}
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
const GEMM_A_K_FAST = ${AK};
const GEMM_B_K_FAST = ${BK};
struct GemmCtx { m0: u32, n0: u32 }

fn gemm_loadA(c: GemmCtx, k: u32, s: u32) -> vec4f {
  var v = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let m = c.m0 + s + 16u * i;
    v[i] = select(0.0, A[min(m, p.M - 1u) * p.K + k], m < p.M);
  }
  return v;
}

fn gemm_loadB(c: GemmCtx, k: u32, s: u32) -> vec4f {
  var v = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let n = c.n0 + s + 16u * i;
    v[i] = select(0.0, B[k * p.N + min(n, p.N - 1u)], n < p.N);
  }
  return v;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = GemmCtx(wg.y * 64u, wg.x * 64u);
  var acc: array<vec4f, 4>;
  gemm_tile(c, 0u, p.split, lid, &acc);
  gemm_tile(c, p.split, p.K, lid, &acc);
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let m = c.m0 + lid.y + 16u * i;
      let n = c.n0 + lid.x + 16u * j;
      if (m < p.M && n < p.N) { C[m * p.N + n] = acc[i][j]; }
    }
  }
}
`));

// [M, N, K, split]: partial tiles on every side, K tails, a first range that is empty, one
// that ends mid-slice, K = 0.
const SHAPES = [
  [70, 67, 37, 21],
  [1, 1, 1, 0],
  [64, 128, 16, 16],
  [130, 5, 50, 7],
  [3, 4, 0, 0],
] as const;

t.test('the tile with test hooks matches float64, and matmul smem bit for bit', async (t) => {
  const rng = new Rng(5);
  for (const [M, N, K, split] of SHAPES) {
    const ad = rng.uniformArray(M * K, -1, 1);
    const bd = rng.uniformArray(K * N, -1, 1);
    const a = tensor(ad, [M, K]);
    const b = tensor(bd, [K, N]);
    const want = new Float64Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[m * N + n] += ad[m * K + k] * bd[k * N + n];
    const viaMatmul = matmul(a, b, { schedule: 'smem' });
    const mm = (await viaMatmul.read()) as Float32Array;
    for (const AK of [false, true]) {
      for (const BK of [false, true]) {
        const c = empty([M, N]);
        rt().dispatch(tileKernel(AK, BK), [a.buffer, b.buffer, c.buffer], PARAMS.pack({ M, N, K, split }), [Math.ceil(N / 64), Math.ceil(M / 64), 1]);
        const got = (await c.read()) as Float32Array;
        const what = `${M}x${N}x${K} split ${split}, A ${AK ? 'k' : 'slot'}-fast, B ${BK ? 'k' : 'slot'}-fast`;
        const r = compare(got, want, { rtol: 1e-5, atol: 4 * Math.max(K, 1) * 2 ** -23 });
        t.ok(r.ok, `${what}: float64 ${r.worst}`);
        assertBitwise(t, got, mm, `${what}: equals matmul smem`);
        c.dispose();
      }
    }
    for (const x of [a, b, viaMatmul]) x.dispose();
  }
});

t.test('register-tile emit helpers', async (t) => {
  t.equal(fmaChain('acc', []), 'acc = acc;');
  t.equal(fmaChain('acc_0_1', [['a0', 'b0'], ['a1', 'b1']]), 'acc_0_1 = fma(a1, b1, fma(a0, b0, acc_0_1));', 'the first term is added first');
  t.same(declareAccumulators(2, 2, (r, c) => `a${r}_${c}`, 'vec4f'), ['  var a0_0 = vec4f(0.0);', '  var a0_1 = vec4f(0.0);', '  var a1_0 = vec4f(0.0);', '  var a1_1 = vec4f(0.0);'], 'row by row');
  t.equal(shared((n) => `w_${n}`, 13), 'subgroupBroadcast(w_1, 5u)', 'value 13 is lane 5\'s second load');
  t.equal(guarded('r < p.ROWS', 'Y[r] = v;'), 'if (r < p.ROWS) { Y[r] = v; }');
});
