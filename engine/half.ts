// IEEE 754 binary16 (f16) on the CPU: how f16 tensors are uploaded and read back (as Uint16
// half bits; Node 20 has no Float16Array). Rounding is to nearest, ties to even, from the full
// float64 value (so an f32 input is rounded once, never twice); values from 65520 up (the
// halfway point between the largest half, 65504, and 2^16) become infinity; below 2^-14 the
// result is subnormal (multiples of 2^-24); NaN becomes the quiet NaN 0x7e00 (sign kept).

/** The largest finite f16. */
export const F16_MAX = 65504;
/** The smallest positive normal and subnormal f16. */
export const F16_MIN_NORMAL = 2 ** -14;
export const F16_MIN_SUBNORMAL = 2 ** -24;

/** v rounded to an integer, ties to even (v >= 0 and below 2^52, so v - floor(v) is exact). */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The f16 bits of `x`, rounded to nearest even. */
export function f16Bits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  if (Number.isNaN(x)) return sign | 0x7e00;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  // Subnormal range: units of 2^-24 (a result of 1024 units is the smallest normal, 0x0400).
  if (a < F16_MIN_NORMAL) return sign | roundHalfEven(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  // 11 significant bits in [1024, 2048]; 2048 carries into the exponent field.
  const m = roundHalfEven(a * 2 ** (10 - e));
  return sign | (((e + 15) << 10) + m - 1024);
}

/** The value of f16 bits `h` (exact in float64 and in f32). */
export function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * F16_MIN_SUBNORMAL;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** `x` rounded to the nearest f16 (as a number). */
export function roundF16(x: number): number {
  return f16Value(f16Bits(x));
}

/** Half bits of every value (what an f16 tensor's buffer holds). */
export function toHalfBits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f16Bits(values[i]);
  return out;
}

/** The values of half bits, as f32 (every f16 is exact in f32). */
export function fromHalfBits(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16Value(bits[i]);
  return out;
}
