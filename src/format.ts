// Numbers as people read them, for any room (the report, errors, the log): a leaf with no imports,
// like errors.ts. A metric's value, formatted by its unit, is measure/metric-format.ts.

/** A fraction as a percentage, two decimals: `95.00%`; — when not a number. */
export function formatPercent(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : `${(value * 100).toFixed(2)}%`;
}

/** `digits` + 2 significant digits, trailing zeros dropped. */
export function formatNumber(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value)
    ? '—'
    : Number(value.toPrecision(Math.max(digits, 1) + 2)).toString();
}

export function formatInteger(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : Math.round(value).toLocaleString('en-US');
}

export function formatBytes(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = Math.abs(value);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${value < 0 ? '-' : ''}${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
