// IEEE 754 half precision, for float16 weights (export.quantize) and float16 ONNX inputs.

/** float32 -> IEEE 754 half precision bits, rounding to nearest even; overflow goes to ±Infinity, tiny values to subnormals or ±0. */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(bits[i]);
  return out;
}

function halfBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  let mantissa = f & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // NaN stays NaN, ±Infinity stays
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large for half: ±Infinity
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    // A subnormal half: the implicit leading 1 joins the mantissa, shifted into place, rounded to even.
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let result = mantissa >>> shift;
    if (rest > half || (rest === half && result & 1)) result++;
    return sign | result;
  }
  const rest = mantissa & 0x1fff;
  let result = sign | (e << 10) | (mantissa >>> 13);
  // Round to nearest even; a carry out of the mantissa correctly bumps the exponent (up to Infinity).
  if (rest > 0x1000 || (rest === 0x1000 && result & 1)) result++;
  return result;
}

/** Half precision bits -> float32 values. */
export function fromFloat16(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) {
    const h = halves[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) out[i] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) out[i] = mantissa ? NaN : sign * Infinity;
    else out[i] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return out;
}
