// WGSL of the reg weight-gradient kernels (shaders/conv.wgsl): convw_reg (R rows of A x 8 lanes
// x CPL column groups) and convw_rows (stride-1 kernel rows, walking down the output rows), from
// their specialisations (./plan.ts).
import { declareAccumulators, fmaChain, guarded, shared, type FmaTerm } from '../emit_tile.js';
import { wgslKernel } from '../shaders.js';
import { VEC4_TEXTURE, asF32, asVec4f, bindings, comp, enables, id, scalarArray, vec4Array, vec4At, windowPlan, type ElementType, type WindowPlan } from './emit_common.js';
import { WGRAD_REG_PARAMS } from './params.js';
import type { RegWgrad, RegWgradRows } from './plan.js';

/** Window offsets d (ix = qx0 * SX + OFFX + 4g + d) of position j and tap t. */
export function regWgradWindow(v: RegWgrad): WindowPlan {
  const ds = new Set<number>();
  for (let j = 0; j < 4; j++) for (let t = 0; t < v.T; t++) ds.add(j * v.SX + t);
  // From a texture every value comes in a vec4 load (one gather per component for all lanes,
  // where a scalar storage load is a load per lane).
  return windowPlan(ds, v.vecX, v.ax, v.texX ? 1 : 3);
}

/** Rows of A each lane loads for its subgroup (clamped: rows past ROWS are never stored). */
function wgradARows(R: number, bcast: boolean): string {
  const out: string[] = [];
  if (!bcast) return '';
  for (let jj = 0; jj < Math.ceil(R / 8); jj++) {
    const lanePart = R < 8 ? `min(lane, ${R - 1}u)` : 'lane';
    out.push(`  let ar_${jj} = min(m0 + ${lanePart} + ${8 * jj}u, p.ROWS - 1u);`);
  }
  return out.join('\n');
}


/**
 * Statements giving `name` the four positions qx0 .. qx0 + 3 of row `row` of A (an expression;
 * positions past QW read 0): one vec4 load, or four guarded scalars.
 */
function loadA(v: { vecA: boolean; texA: boolean; storage: ElementType }, name: string, index: string, row: string, qx0: string): string[] {
  const i0 = `(abase + ${row} * p.QH) * p.QW + ${qx0}`;
  if (v.vecA) return [`    let ${name} = ${asVec4f(v.storage, vec4At('A4', `(${i0}) / 4u`, v.texA))};`];
  const parts = [0, 1, 2, 3].map((j) => `select(0.0, ${asF32(v.storage, `A[min(${index} + ${j}u, arrayLength(&A) - 1u)]`)}, ${qx0} + ${j}u < p.QW)`);
  return [`    let ${index} = ${i0};`, `    let ${name} = vec4f(${parts.join(', ')});`];
}

/** Zeros that pad a T-wide accumulator to the vec4 of a partial-sum column group. */
const wgradPad = (T: number) => ', 0.0'.repeat(4 - T);

/** Bindings of the reg weight-gradient kernels: A, the input X (scalar and/or vec4), P. */
function wgradBindings(v: { vecA: boolean; texA: boolean; texX: boolean; storage: ElementType }, plan: WindowPlan): [string, string][] {
  const vec4 = (tex: boolean) => (tex ? VEC4_TEXTURE : vec4Array(v.storage));
  const binds: [string, string][] = [[v.vecA ? 'A4' : 'A', v.vecA ? vec4(v.texA) : scalarArray(v.storage)]];
  if (plan.scalarD.length) binds.push(['X', scalarArray(v.storage)]);
  if (plan.chunks.length) binds.push(['X4', vec4(v.texX)]);
  binds.push(['P', 'array<vec4f>']);
  return binds;
}

export function regWgradCode(v: RegWgrad): string {
  const J = Math.ceil(v.R / 8);
  const vt = v.T === 1 ? 'f32' : `vec${v.T}f`;
  const { chunks, inChunk, scalarD } = regWgradWindow(v);

  const cols: string[] = [];
  for (let c = 0; c < v.CPL; c++) {
    cols.push(`  let cgr_${c} = (wg.x * 8u + lane) * ${v.CPL}u + ${c}u;`);
    cols.push(`  let cg_${c} = min(cgr_${c}, p.NCG - 1u);`);
    cols.push(`  let g_${c} = cg_${c} % ${v.G}u;`);
    cols.push(`  let ty_${c} = (cg_${c} / ${v.G}u) % p.TY;`);
    cols.push(`  let kin_${c} = cg_${c} / (${v.G}u * p.TY);`);
  }
  const acc = declareAccumulators(v.R, v.CPL, (r, c) => `acc_${r}_${c}`, vt);

  const body: string[] = [];
  // Input rows of this iteration, one per column group.
  for (let c = 0; c < v.CPL; c++) {
    body.push(`    let iy_${c} = i32(qy * p.SY + ty_${c}) + p.OFFY;`);
    body.push(`    let rok_${c} = iy_${c} >= 0 && iy_${c} < i32(p.IH);`);
    body.push(`    let xrow_${c} = ((b * p.KIN + kin_${c}) * p.IH + u32(clamp(iy_${c}, 0, i32(p.IH) - 1))) * p.IW;`);
  }
  const terms: FmaTerm[][] = Array.from({ length: v.R * v.CPL }, () => []);
  for (let u = 0; u < v.UQ; u++) {
    body.push(`    let qx0_${u} = (qg + ${u}u) * 4u;`);
    // A: four positions of row ar_jj, for the subgroup to broadcast.
    for (let jj = 0; jj < (v.bcast ? J : 0); jj++) body.push(...loadA(v, `av_${u}_${jj}`, `ai_${u}_${jj}`, `ar_${jj}`, `qx0_${u}`));
    // X windows of this lane's column groups.
    for (let c = 0; c < v.CPL; c++) {
      const n = `${u}_${c}`;
      body.push(`    let xb_${n} = i32(qx0_${u} * ${v.SX}u + 4u * g_${c}) + p.OFFX;`);
      for (const d0 of chunks) {
        const ix = `xb_${n} + ${d0}`;
        const x4 = vec4At('X4', `(xrow_${c} + select(0u, u32(${ix}), ${ix} >= 0 && ${ix} < i32(p.IW))) / 4u`, v.texX);
        body.push(`    let xv_${n}_${id(d0)} = select(vec4f(0.0), ${asVec4f(v.storage, x4)}, rok_${c} && ${ix} >= 0 && ${ix} < i32(p.IW));`);
      }
      for (const d of scalarD) {
        const ix = `xb_${n} + ${d}`;
        body.push(`    let x_${n}_${id(d)} = select(0.0, ${asF32(v.storage, `X[xrow_${c} + u32(clamp(${ix}, 0, i32(p.IW) - 1))]`)}, rok_${c} && ${ix} >= 0 && ${ix} < i32(p.IW));`);
      }
      const xval = (d: number) => {
        const ch = inChunk.get(d);
        return ch ? `xv_${n}_${id(ch[0])}.${comp[ch[1]]}` : `x_${n}_${id(d)}`;
      };
      for (let j = 0; j < 4; j++) {
        const xs = [];
        for (let t = 0; t < v.T; t++) xs.push(xval(j * v.SX + t));
        body.push(`    let xs_${n}_${j} = ${vt}(${xs.join(', ')});`);
      }
      for (let r = 0; r < v.R; r++) {
        for (let j = 0; j < 4; j++) terms[r * v.CPL + c].push([`${vt}(a_${u}_${r}.${comp[j]})`, `xs_${n}_${j}`]);
      }
    }
  }
  // Row by row: broadcast this row's A values (or load them), then one chained update per accumulator.
  for (let r = 0; r < v.R; r++) {
    for (let u = 0; u < v.UQ; u++) {
      if (v.bcast) body.push(`    let a_${u}_${r} = ${shared((n) => `av_${u}_${n}`, r)};`);
      else body.push(...loadA(v, `a_${u}_${r}`, `ai_${u}_${r}`, `min(m0 + ${r}u, p.ROWS - 1u)`, `qx0_${u}`));
    }
    for (let c = 0; c < v.CPL; c++) body.push(`    ${fmaChain(`acc_${r}_${c}`, terms[r * v.CPL + c])}`);
  }

  const epi: string[] = [];
  const pad = wgradPad(v.T);
  for (let r = 0; r < v.R; r++) {
    for (let c = 0; c < v.CPL; c++) {
      epi.push(`  ${guarded(`m0 + ${r}u < p.ROWS && cgr_${c} < p.NCG`, `P[(wg.z * p.ROWS + m0 + ${r}u) * p.NCG + cg_${c}] = vec4f(acc_${r}_${c}${pad});`)}`);
    }
  }
  return wgslKernel('conv', 'convw_reg', {
    ENABLE: enables(v.storage, v.bcast),
    LANE: v.bcast ? 'subgroup_invocation_id' : 'local_invocation_index',
    PARAMS: WGRAD_REG_PARAMS.wgsl,
    BINDINGS: bindings(wgradBindings(v, { chunks, inChunk, scalarD })),
    R: v.R,
    UQ: v.UQ,
    AROWS: wgradARows(v.R, v.bcast),
    COLS: cols.join('\n'),
    ACC_DECL: acc.join('\n'),
    BODY: body.join('\n'),
    EPILOGUE: epi.join('\n'),
  });
}


export function regWgradRowsWindow(v: RegWgradRows): WindowPlan {
  return regWgradWindow({ R: v.R, G: 1, T: v.T, CPL: 1, SX: v.SX, vecA: v.vecA, vecX: v.vecX, ax: v.ax, UQ: 1, texA: v.texA, texX: v.texX, bcast: v.bcast, storage: v.storage });
}

export function regWgradRowsCode(v: RegWgradRows): string {
  const J = Math.ceil(v.R / 8);
  const vt = v.T === 1 ? 'f32' : `vec${v.T}f`;
  const { chunks, inChunk, scalarD } = regWgradRowsWindow(v);
  // The values of one input row: its aligned vec4 chunks and its scalars.
  const names = (row: string) => [
    ...chunks.map((d0) => ({ name: `${row}_v${id(d0)}`, type: 'vec4f', d0, scalar: false })),
    ...scalarD.map((d) => ({ name: `${row}_s${id(d)}`, type: 'f32', d0: d, scalar: true })),
  ];
  // Statements loading input row qy + OFFY + t into the values of `row` (`assign`: ring vars).
  const loadRow = (t: number, row: string, assign: boolean, indent: string): string[] => {
    const out = [
      `${indent}let iy_${row} = i32(qy + ${t}u) + p.OFFY;`,
      `${indent}let rok_${row} = iy_${row} >= 0 && iy_${row} < i32(p.IH);`,
      `${indent}let xrow_${row} = (chan + u32(clamp(iy_${row}, 0, i32(p.IH) - 1))) * p.IW;`,
    ];
    for (const n of names(row)) {
      const ix = `xb + ${n.d0}`;
      const ok = `rok_${row} && ${ix} >= 0 && ${ix} < i32(p.IW)`;
      const value = n.scalar
        ? `select(0.0, ${asF32(v.storage, `X[xrow_${row} + u32(clamp(${ix}, 0, i32(p.IW) - 1))]`)}, ${ok})`
        : `select(vec4f(0.0), ${asVec4f(v.storage, vec4At('X4', `(xrow_${row} + select(0u, u32(${ix}), ${ix} >= 0 && ${ix} < i32(p.IW))) / 4u`, v.texX))}, ${ok})`;
      out.push(`${indent}${assign ? '' : 'let '}${n.name} = ${value};`);
    }
    return out;
  };
  const rowName = (ty: number) => (ty === v.TY - 1 ? 'xn' : `ring${ty}`);

  const ring: string[] = [];
  for (let t = 0; t < v.TY - 1; t++) for (const n of names(`ring${t}`)) ring.push(`  var ${n.name} = ${n.type}(0.0);`);
  const fill: string[] = [];
  for (let t = 0; t < v.TY - 1; t++) fill.push(...loadRow(t, `ring${t}`, true, '      '));
  const acc = declareAccumulators(v.R, v.TY, (r, ty) => `acc_${r}_${ty}`, vt);

  const body: string[] = [...loadRow(v.TY - 1, 'xn', false, '    ')];
  for (let jj = 0; jj < (v.bcast ? J : 0); jj++) body.push(...loadA(v, `av_${jj}`, `ai_${jj}`, `ar_${jj}`, 'qx0'));
  // Per kernel row: the T taps seen by each of the four positions.
  for (let ty = 0; ty < v.TY; ty++) {
    const row = rowName(ty);
    const xval = (d: number) => {
      const ch = inChunk.get(d);
      return ch ? `${row}_v${id(ch[0])}.${comp[ch[1]]}` : `${row}_s${id(d)}`;
    };
    for (let j = 0; j < 4; j++) {
      const xs = [];
      for (let t = 0; t < v.T; t++) xs.push(xval(j * v.SX + t));
      body.push(`    let xs_${ty}_${j} = ${vt}(${xs.join(', ')});`);
    }
  }
  // Row by row of A: broadcast its four positions, then one chained update per kernel row.
  for (let r = 0; r < v.R; r++) {
    if (v.bcast) body.push(`    let a_${r} = ${shared((n) => `av_${n}`, r)};`);
    else body.push(...loadA(v, `a_${r}`, `ai_${r}`, `min(m0 + ${r}u, p.ROWS - 1u)`, 'qx0'));
    for (let ty = 0; ty < v.TY; ty++) {
      body.push(`    ${fmaChain(`acc_${r}_${ty}`, [0, 1, 2, 3].map((j) => [`${vt}(a_${r}.${comp[j]})`, `xs_${ty}_${j}`] as const))}`);
    }
  }
  const shift: string[] = [];
  for (let t = 0; t < v.TY - 1; t++) {
    const src = rowName(t + 1);
    const dst = names(`ring${t}`);
    names(src).forEach((n, i) => shift.push(`    ${dst[i].name} = ${n.name};`));
  }
  const epi: string[] = [];
  const pad = wgradPad(v.T);
  for (let r = 0; r < v.R; r++) {
    for (let ty = 0; ty < v.TY; ty++) {
      epi.push(`  ${guarded(`m0 + ${r}u < p.ROWS && kinr < p.KIN`, `P[(wg.z * p.ROWS + m0 + ${r}u) * p.NCG + kin * ${v.TY}u + ${ty}u] = vec4f(acc_${r}_${ty}${pad});`)}`);
    }
  }
  return wgslKernel('conv', 'convw_rows', {
    ENABLE: enables(v.storage, v.bcast),
    LANE: v.bcast ? 'subgroup_invocation_id' : 'local_invocation_index',
    PARAMS: WGRAD_REG_PARAMS.wgsl,
    BINDINGS: bindings(wgradBindings(v, { chunks, inChunk, scalarD })),
    R: v.R,
    SX: v.SX,
    AROWS: wgradARows(v.R, v.bcast),
    RING_DECL: ring.join('\n'),
    ACC_DECL: acc.join('\n'),
    RING_FILL: fill.join('\n'),
    BODY: body.join('\n'),
    RING_SHIFT: shift.join('\n'),
    EPILOGUE: epi.join('\n'),
  });
}
