/**
 * Where a part of the config stands in its file: the loader attaches a locator to the objects the
 * later stages check against the run (`gates`, checked against the metrics the run measures;
 * `student`, whose layers TF.js validates), so that their errors name `file:line:column` as the
 * loader's own do. Non-enumerable and keyed by a symbol: invisible to Object.entries, JSON,
 * structuredClone and spreads of the config (a copied object simply has no locator).
 */
const LOCATE = Symbol.for('distill-gate.config-locator');

/**
 * `file:line:column` of a key path (relative to the object the locator is attached to): of its
 * value, or of the key itself (`at: 'key'`, where a misspelt key is the fault); the file alone when
 * the path is not in the file (a default), undefined when nothing is attached.
 */
export type Locator = (keyPath: ReadonlyArray<string | number>, at?: 'key' | 'value') => string;

export function attachLocator<T extends object>(target: T, locator: Locator): T {
  Object.defineProperty(target, LOCATE, { value: locator, enumerable: false, configurable: true, writable: true });
  return target;
}

export function locatorOf(target: object | undefined): Locator | undefined {
  return target ? (target as { [LOCATE]?: Locator })[LOCATE] : undefined;
}

/**
 * Where the first of `keyPaths` that is in the file stands (`file:line:column`; the file alone when
 * none is), so that a caller can fall back from a key to the mapping that holds it; undefined when
 * `target` carries no locator.
 */
export function placeOf(
  target: object | undefined,
  ...keyPaths: Array<ReadonlyArray<string | number>>
): string | undefined {
  const locator = locatorOf(target);
  if (!locator || keyPaths.length === 0) return undefined;
  const places = keyPaths.map((keyPath) => locator(keyPath));
  return places.find((p) => /:\d+:\d+$/.test(p)) ?? places[0];
}

/** An error's culprit with the place it was written (`file:line:column gates.kl`), or the culprit alone. */
export function locatedCulprit(
  target: object | undefined,
  culprit: string,
  ...keyPaths: Array<ReadonlyArray<string | number>>
): string {
  const place = placeOf(target, ...keyPaths);
  return place ? `${place} ${culprit}` : culprit;
}

/** As locatedCulprit, for a key itself (an unknown metric's name) rather than its value. */
export function locatedKey(
  target: object | undefined,
  culprit: string,
  keyPath: ReadonlyArray<string | number>,
): string {
  const locator = locatorOf(target);
  return locator ? `${locator(keyPath, 'key')} ${culprit}` : culprit;
}
