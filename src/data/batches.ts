/** Copies the rows named by `indices` (a slice of a permutation) into one contiguous buffer. */
export function gatherRows(source: Float32Array, rowLength: number, indices: ArrayLike<number>): Float32Array {
  const out = new Float32Array(indices.length * rowLength);
  for (let i = 0; i < indices.length; i++) {
    const from = indices[i] * rowLength;
    out.set(source.subarray(from, from + rowLength), i * rowLength);
  }
  return out;
}

export function rowLength(sampleShape: number[]): number {
  return sampleShape.reduce((a, b) => a * b, 1);
}
