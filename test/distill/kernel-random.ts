/**
 * Uniform in [0, 1) for a dropout mask: `uniform` in src/distill/kernel/dropout.c, for tests that
 * rebuild the kernel's masks.
 */
export function dropoutUniform(seed: number, op: number, element: number): number {
  const mix = (value: number) => {
    let h = value >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d) >>> 0;
    h ^= h >>> 15;
    h = Math.imul(h, 0x846ca68b) >>> 0;
    h ^= h >>> 16;
    return h >>> 0;
  };
  return (mix(mix((seed ^ Math.imul(op, 0x9e3779b9)) >>> 0) ^ element) >>> 8) / 16777216;
}
