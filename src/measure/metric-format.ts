// A metric's value as the report, the log and the gates print it, by the unit the catalogue
// (metrics.ts) gives it. Unit-free number formatting is src/format.ts.
import { formatBytes, formatInteger, formatNumber, formatPercent } from '../format.js';
import { metricSpec } from './metrics.js';

/** A metric's value as the report's tables show it: `95.00%`, `1.2 KiB`, `0.512 ms`, `1,234`, `0.912`; — when not measured. */
export function formatMetric(name: string, value: number | undefined | null): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return '—';
  switch (metricSpec(name)?.unit) {
    case 'fraction':
      return formatPercent(value);
    case 'bytes':
      return formatBytes(value);
    case 'parameters':
    case 'samples/s':
      return formatInteger(value);
    case 'ms':
      return `${formatNumber(value, 3)} ms`;
    case 'coefficient':
      return value.toFixed(3);
    case 'difference':
      return formatDifference(value);
    default:
      return formatNumber(value, 4);
  }
}

/** A metric's value in one-row-per-run tables (merged summary, history): `95.00%`, `4.00×`, `0.5123`, `51200`. */
export function formatCompact(name: string, value: number | undefined | null): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return '—';
  switch (metricSpec(name)?.unit) {
    case 'fraction':
      return formatPercent(value);
    case 'ratio':
      return `${value.toFixed(2)}×`;
    case 'coefficient':
      return value.toFixed(3);
    case 'difference':
      return formatDifference(value);
    case 'ms':
    case 'nats':
      return value.toFixed(4);
    case 'samples/s':
      return formatInteger(value);
    default:
      return String(value);
  }
}

/** An absolute difference of outputs, two significant digits: `3.1e-7`, `0`. */
function formatDifference(value: number): string {
  return value === 0 ? '0' : value.toExponential(1);
}
