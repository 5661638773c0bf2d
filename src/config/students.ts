import { InputError } from '../errors.js';
import { attachLocator, locatorOf } from './locate.js';
import type { CandidateSpec, LayerSpec } from './schema.js';

/** What a family's layers and name write where each width goes. */
export const WIDTH_PLACEHOLDER = '{width}';

/** The name the sweep gives the configured (`student:`) student; no candidate may take it. */
export const CONFIGURED_NAME = 'student';

/** One candidate of the sweep, a family expanded: its name, the student, and the config entry it came from (`students[2]`). */
export interface SweepCandidateSpec {
  name: string;
  source: { layers: LayerSpec[] } | { model: string };
  /** The config entry, for errors: `students[2]`, with the width for a family's member (`students[2] (width 16)`). */
  key: string;
  /** The entry's index in `students`. */
  index: number;
}

/**
 * Checks `students:` beyond its types, each error naming the entry's field: a family (`widths`)
 * needs `{width}` in its name and somewhere in its layers, and `{width}` appears only in a family
 * and only as a whole value; names are unique, `student` is the configured student's. `where`
 * locates a key path in the config file.
 */
export function checkStudents(
  students: readonly CandidateSpec[],
  where: (keyPath: Array<string | number>) => string,
): void {
  students.forEach((entry, i) => {
    const at = (...keyPath: Array<string | number>) =>
      `${where(['students', i, ...keyPath])} students[${i}].${keyPath.join('.')}`;
    if ('model' in entry) {
      if (entry.name.includes(WIDTH_PLACEHOLDER))
        throw new InputError(
          at('name'),
          `${WIDTH_PLACEHOLDER} in a name needs a family (layers and widths); a model.json candidate is one student: name it plainly.`,
        );
      return;
    }
    const places = placeholders(entry.layers);
    const bad = places.find((p) => p.value !== WIDTH_PLACEHOLDER);
    if (bad)
      throw new InputError(
        at('layers', ...bad.keyPath),
        `${JSON.stringify(bad.value)} is not a value: write the placeholder as the whole value, ${JSON.stringify(WIDTH_PLACEHOLDER)} (e.g. units: "${WIDTH_PLACEHOLDER}").`,
      );
    if (entry.widths) {
      if (places.length === 0)
        throw new InputError(
          at('widths'),
          `widths makes a family, but no layer value is "${WIDTH_PLACEHOLDER}"; put it where the width goes (e.g. units: "${WIDTH_PLACEHOLDER}") or remove widths.`,
        );
      if (!entry.name.includes(WIDTH_PLACEHOLDER))
        throw new InputError(
          at('name'),
          `a family's name must hold ${WIDTH_PLACEHOLDER}, so that each width gets its own name (e.g. "w${WIDTH_PLACEHOLDER}").`,
        );
      const widths = entry.widths;
      const twice = widths.find((w, j) => widths.indexOf(w) !== j);
      if (twice !== undefined) throw new InputError(at('widths'), `lists ${twice} twice; list each width once.`);
    } else if (places.length > 0) {
      throw new InputError(
        at('layers', ...places[0].keyPath),
        `"${WIDTH_PLACEHOLDER}" needs widths beside the layers (e.g. widths: [8, 16, 32]), or a number in its place.`,
      );
    } else if (entry.name.includes(WIDTH_PLACEHOLDER)) {
      throw new InputError(
        at('name'),
        `${WIDTH_PLACEHOLDER} in a name needs widths beside the layers (e.g. widths: [8, 16, 32]).`,
      );
    }
  });
  const seen = new Map<string, string>([[CONFIGURED_NAME, 'the configured student (student:)']]);
  for (const candidate of expandStudents(students)) {
    const before = seen.get(candidate.name);
    if (before) {
      const entry = students[candidate.index];
      const field = 'widths' in entry && entry.widths ? 'widths' : 'name';
      throw new InputError(
        `${where(['students', candidate.index, 'name'])} students[${candidate.index}].${field}`,
        `the name ${JSON.stringify(candidate.name)} is taken by ${before}; give each candidate its own name.`,
      );
    }
    seen.set(candidate.name, candidate.key);
  }
}

/** The candidates of `students:`, each family expanded into one candidate per width, in the config's order. */
export function expandStudents(students: readonly CandidateSpec[] | undefined): SweepCandidateSpec[] {
  return (students ?? []).flatMap((entry, index): SweepCandidateSpec[] => {
    const key = `students[${index}]`;
    if ('model' in entry) return [{ name: entry.name, source: { model: entry.model }, key, index }];
    // The entry's locator goes with each of its students: TF.js's errors about a layer then name
    // its line in the config, whichever width it was built with.
    const located = (layers: LayerSpec[]) => {
      const source = { layers };
      const locator = locatorOf(entry);
      return locator ? attachLocator(source, locator) : source;
    };
    if (!entry.widths) return [{ name: entry.name, source: located(entry.layers), key, index }];
    return entry.widths.map((width) => ({
      name: entry.name.split(WIDTH_PLACEHOLDER).join(String(width)),
      source: located(entry.layers.map((layer) => withWidth(layer, width) as LayerSpec)),
      key: `${key} (width ${width})`,
      index,
    }));
  });
}

/** Every string in the layers that holds `{width` (a placeholder, or a misspelt one), and where. */
function placeholders(
  value: unknown,
  keyPath: Array<string | number> = [],
): Array<{ value: string; keyPath: Array<string | number> }> {
  if (typeof value === 'string') return value.includes('{width') ? [{ value, keyPath }] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => placeholders(item, [...keyPath, i]));
  if (value && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => placeholders(v, [...keyPath, k]));
  return [];
}

function withWidth(value: unknown, width: number): unknown {
  if (value === WIDTH_PLACEHOLDER) return width;
  if (Array.isArray(value)) return value.map((item) => withWidth(item, width));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withWidth(v, width)]));
  return value;
}
