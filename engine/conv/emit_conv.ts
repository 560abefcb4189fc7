// WGSL of the reg conv kernel (shaders/conv.wgsl, conv_reg): the unrolled parts of one
// subgroup's R rows x 8 lanes x PJ positions, from a RegConv specialisation (./plan.ts).
import { declareAccumulators, fmaChain, guarded, shared } from '../emit_tile.js';
import { wgslKernel } from '../shaders.js';
import { asF32, asVec4f, bindings, comp, enables, id, scalarArray, storedScalar, storedVec4, vec4Array, windowPlan, type WindowPlan } from './emit_common.js';
import { CONV_REG_PARAMS } from './params.js';
import type { RegConv } from './plan.js';

/** Window offsets d (ix = qx0 * SX + OFFX + d) of position j and horizontal tap tx. */
const convD = (v: RegConv, j: number, tx: number) => j * v.SX + v.DIR * tx;

export function regConvWindow(v: RegConv): WindowPlan {
  const ds = new Set<number>();
  for (let j = 0; j < v.PJ; j++) for (let tx = 0; tx < v.TX; tx++) ds.add(convD(v, j, tx));
  return windowPlan(ds, v.vecX, v.ax);
}


export function regConvCode(v: RegConv): string {
  const st = v.storage;
  const J = Math.ceil(v.R / 8);
  const G = Math.ceil(v.TX / 4);
  const chans = v.mode === 'chan' ? 4 : 1;
  const { chunks, inChunk, scalarD } = regConvWindow(v);
  const setup: string[] = [];
  setup.push(`  let xq = i32(qx0 * ${v.SX}u) + p.OFFX;`);
  for (const d of scalarD) {
    setup.push(`  let ix_${id(d)} = xq + ${d};`);
    setup.push(`  let ok_${id(d)} = ix_${id(d)} >= 0 && ix_${id(d)} < i32(p.IW);`);
    setup.push(`  let ixc_${id(d)} = u32(clamp(ix_${id(d)}, 0, i32(p.IW) - 1));`);
  }
  for (const d0 of chunks) {
    setup.push(`  let okv_${id(d0)} = xq + ${d0} >= 0 && xq + ${d0} < i32(p.IW);`);
    setup.push(`  let ixv_${id(d0)} = select(0u, u32(xq + ${d0}), okv_${id(d0)});`);
  }
  // This iteration's kernel row ty: its input row for this lane.
  const rowSetup = [
    `    let iy = i32(qy * p.SY) ${v.DIR > 0 ? '+' : '-'} i32(ty) + p.OFFY;`,
    `    let rok = iy >= 0 && iy < i32(p.IH);`,
    `    let rix = (b * p.KIN * p.IH + u32(clamp(iy, 0, i32(p.IH) - 1))) * p.IW;`,
  ];
  // Weight vec4 blocks of one kernel row: its tap groups g (tap mode) or taps tx (chan mode),
  // stored consecutively for consecutive (k, ty), i.e. for consecutive iterations.
  const blocks: { g: number; tx: number }[] = [];
  if (v.mode === 'tap') for (let g = 0; g < G; g++) blocks.push({ g, tx: -1 });
  else for (let tx = 0; tx < v.TX; tx++) blocks.push({ g: -1, tx });
  const BPK = blocks.length;
  // rowVec4: per iteration the subgroup needs R vec4s (R / 4 row quads x 4 channels); vec4 f
  // (quad f % (R / 4), channel f / (R / 4)) is loaded by lane f % 8 as its load f / 8.
  const QUADS = v.R / 4;
  for (let jj = 0; jj < (v.bcast ? J : 0); jj++) {
    if (v.rowVec4) {
      setup.push(`  let wq_${jj} = (lane + ${8 * jj}u) % ${QUADS}u;`);
      setup.push(`  let wc_${jj} = (lane + ${8 * jj}u) / ${QUADS}u;`);
    } else {
      setup.push(`  let wb_${jj} = (wrow + ${8 * jj}u) * (p.KITERS * ${BPK}u);`);
    }
  }

  const H = v.PJ / 4; // vec4 accumulators per row
  const acc = declareAccumulators(v.R, H, (r, h) => `acc_${r}_${h}`, 'vec4f');

  const body: string[] = [...rowSetup];
  // Input window: channel c of this k step (chan mode: four), row ty, offsets D.
  for (let c = 0; c < chans; c++) {
    let ch = c === 0 ? 'xk' : `xk + ${c}u`;
    let chOk = '';
    if (v.kinTail) {
      body.push(`    let cok_${c} = ${ch} < p.KIN;`);
      ch = `min(${ch}, p.KIN - 1u)`;
      chOk = ` && cok_${c}`;
    }
    const base = `xo_${c}`;
    body.push(`    let ${base} = rix + (${ch}) * IHW;`);
    for (const d0 of chunks) {
      body.push(`    let xv_${c}_${id(d0)} = select(vec4f(0.0), ${asVec4f(st, `X4[(${base} + ixv_${id(d0)}) / 4u]`)}, rok && okv_${id(d0)}${chOk});`);
    }
    for (const d of scalarD) {
      body.push(`    let x_${c}_${id(d)} = select(0.0, ${asF32(st, `X[${base} + ixc_${id(d)}]`)}, rok && ok_${id(d)}${chOk});`);
    }
  }
  const xval = (c: number, d: number) => {
    const ch = inChunk.get(d);
    return ch ? `xv_${c}_${id(ch[0])}.${comp[ch[1]]}` : `x_${c}_${id(d)}`;
  };
  // rowVec4: channel xk + c of row quad m0 / 4 + q; channels past KIN (and the quads of rows past
  // ROWS, never stored) read a clamped element.
  const quadLoad = (c: string, q: string) => {
    const idx = `min((xk + ${c}) * (p.ROWS / 4u) + m0 / 4u + ${q}, ${v.uniformW ? `${v.uniformW - 1}u` : 'arrayLength(&Wp) - 1u'})`;
    return v.kinTail ? `select(vec4f(0.0), Wp[${idx}], xk + ${c} < p.KIN)` : `Wp[${idx}]`;
  };
  // Block bi of weight row `row` (an expression) in this iteration.
  const rowLoad = (row: string, bi: number) => `Wp[(${row}) * (p.KITERS * ${BPK}u) + it * ${BPK}u + ${bi}u]`;
  if (v.bcast) {
    blocks.forEach((blk, bi) => {
      for (let jj = 0; jj < J; jj++) {
        if (v.rowVec4) body.push(`    let w_${bi}_${jj} = ${quadLoad(`wc_${jj}`, `wq_${jj}`)};`);
        else body.push(`    let w_${bi}_${jj} = Wp[wb_${jj} + it * ${BPK}u + ${bi}u];`);
      }
    });
  }
  // Terms of one row's update: (block, weight component, accumulator h) -> the weight
  // component times a vec4 of inputs (positions 4h .. 4h + 3).
  const terms: { bi: number; comp: number; h: number; xs: string }[] = [];
  blocks.forEach((blk, bi) => {
    for (let h = 0; h < H; h++) {
      const js = [0, 1, 2, 3].map((j) => 4 * h + j);
      if (v.mode === 'tap') {
        const T = Math.min(4, v.TX - 4 * blk.g);
        for (let t = 0; t < T; t++) {
          const tx = 4 * blk.g + t;
          terms.push({ bi, comp: t, h, xs: `vec4f(${js.map((j) => xval(0, convD(v, j, tx))).join(', ')})` });
        }
      } else {
        for (let c = 0; c < 4; c++) {
          terms.push({ bi, comp: c, h, xs: `vec4f(${js.map((j) => xval(c, convD(v, j, blk.tx))).join(', ')})` });
        }
      }
    }
  });
  // Shared input vectors (the same vec4 serves every row).
  const xvec = new Map<string, string>();
  for (const t of terms) {
    if (!xvec.has(t.xs)) {
      const name = `xs_${xvec.size}`;
      xvec.set(t.xs, name);
      body.push(`    let ${name} = ${t.xs};`);
    }
  }
  // Row by row: broadcast the row's weights from the lane that loaded them, then one chained
  // update per accumulator.
  for (let r = 0; r < v.R; r++) {
    // The weight of row r for term t: component t.comp of the row's broadcast vec4, or
    // (rowVec4) component r % 4 of the vec4 of its quad and channel t.comp.
    let wgt = (t: { bi: number; comp: number }) => `s_${r}_${t.bi}.${comp[t.comp]}`;
    if (v.rowVec4) {
      if (r % 4 === 0) {
        for (let c = 0; c < 4; c++) {
          const f = c * QUADS + (r >> 2);
          body.push(`    let q_${r >> 2}_${c} = ${v.bcast ? shared((n) => `w_0_${n}`, f) : quadLoad(`${c}u`, `${r >> 2}u`)};`);
        }
      }
      wgt = (t) => `q_${r >> 2}_${t.comp}.${comp[r & 3]}`;
    } else {
      for (let bi = 0; bi < BPK; bi++) {
        body.push(`    let s_${r}_${bi} = ${v.bcast ? shared((n) => `w_${bi}_${n}`, r) : rowLoad(`m0 + ${r}u`, bi)};`);
      }
    }
    for (let h = 0; h < H; h++) {
      body.push(`    ${fmaChain(`acc_${r}_${h}`, terms.filter((t) => t.h === h).map((t) => [`vec4f(${wgt(t)})`, xvec.get(t.xs)!]))}`);
    }
  }

  const epi: string[] = [];
  epi.push(`  let oy = qy * p.OSY + p.OPY;`);
  for (let r = 0; r < v.R; r++) {
    epi.push(`  if (m0 + ${r}u < p.ROWS) {`);
    epi.push(`    let row = m0 + ${r}u;`);
    epi.push(`    let ob = ((b * p.ROWS + row) * p.OH + oy) * p.OW;`);
    epi.push(`    let bv = select(0.0, ${asF32(st, 'bias[min(row, arrayLength(&bias) - 1u)]')}, p.HAS_BIAS != 0u);`);
    for (let h = 0; h < H; h++) {
      epi.push(`    var v${h} = acc_${r}_${h} + vec4f(bv);`);
      epi.push(`    if (p.RELU != 0u) { v${h} = max(v${h}, vec4f(0.0)); }`);
      if (v.vecY) {
        const q = `qx0 + ${4 * h}u`;
        epi.push(H > 1 ? `    ${guarded(`${q} < p.QW`, `Y[(ob + ${q}) / 4u] = ${storedVec4(st, `v${h}`)};`)}` : `    Y[(ob + qx0) / 4u] = ${storedVec4(st, `v${h}`)};`);
      } else {
        for (let j = 0; j < 4; j++) {
          const q = `qx0 + ${4 * h + j}u`;
          epi.push(`    ${guarded(`${q} < p.QW`, `Y[ob + (${q}) * p.OSX + p.OPX] = ${storedScalar(st, `v${h}.${comp[j]}`)};`)}`);
        }
      }
    }
    epi.push(`  }`);
  }

  const binds: [string, string][] = [];
  if (scalarD.length) binds.push(['X', scalarArray(st)]);
  if (chunks.length) binds.push(['X4', vec4Array(st)]);
  binds.push(['Wp', v.uniformW ? `uniform array<vec4f, ${v.uniformW}>` : 'array<vec4f>']);
  binds.push(['bias', scalarArray(st)]);
  binds.push(['Y', v.vecY ? vec4Array(st) : scalarArray(st)]);
  return wgslKernel('conv', 'conv_reg', {
    ENABLE: enables(st, v.bcast),
    LANE: v.bcast ? 'subgroup_invocation_id' : 'local_invocation_index',
    PARAMS: CONV_REG_PARAMS.wgsl,
    BINDINGS: bindings(binds),
    R: v.R,
    PJ: v.PJ,
    SETUP: setup.join('\n'),
    ACC_DECL: acc.join('\n'),
    BODY: body.join('\n'),
    EPILOGUE: epi.join('\n'),
  });
}

