// Medians over interleaved rounds, for the benchmarks that print them.

/** The median of an ascending array. */
export function median(sorted: number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Field by field median of numeric fields; other fields from the first. */
export function medianOf<T extends object>(items: T[]): T {
  const out = { ...items[0] } as Record<string, unknown>;
  for (const [key, value] of Object.entries(items[0])) {
    if (typeof value === 'number')
      out[key] = median(items.map((item) => (item as Record<string, number>)[key]).sort((a, b) => a - b));
  }
  return out as T;
}
