// WGSL-emitting helpers of the register-tile kernels (conv_reg, convw_reg, convw_rows, matmul's
// reg schedule, nearest_reg): each unrolls a tile of named accumulators, so they share how an
// accumulator is declared, updated by a chain of FMAs, fed by a subgroup-shared load and stored
// behind a bounds check.

/** A pair of WGSL operands whose product an FMA chain adds. */
export type FmaTerm = readonly [string, string];

/** `var NAME = TYPE(0.0);` for each accumulator of a rows x cols tile, row by row. */
export function declareAccumulators(rows: number, cols: number, name: (r: number, c: number) => string, type: string, indent = '  '): string[] {
  const out: string[] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out.push(`${indent}var ${name(r, c)} = ${type}(0.0);`);
  return out;
}

/**
 * `ACC = fma(a_n, b_n, ... fma(a_0, b_0, ACC));`: the terms added to ACC in order (the first
 * innermost) in one assignment. llvmpipe turns every assignment inside a loop into a load, a
 * masked blend and a store, so a register tile assigns each accumulator once per iteration.
 */
export function fmaChain(acc: string, terms: readonly FmaTerm[]): string {
  return `${acc} = ${terms.reduce((e, [a, b]) => `fma(${a}, ${b}, ${e})`, acc)};`;
}

/**
 * Value i of a load shared by a subgroup of 8: lane i % 8 made it as its load i / 8 (named by
 * `load`), and subgroupBroadcast hands it to every lane (one load per subgroup, not per lane).
 */
export function shared(load: (n: number) => string, i: number): string {
  return `subgroupBroadcast(${load(i >> 3)}, ${i & 7}u)`;
}

/** `if (COND) { STMT }`: a store (or any statement) of an element that may lie past the output. */
export function guarded(cond: string, stmt: string): string {
  return `if (${cond}) { ${stmt} }`;
}
