/**
 * Exit codes shared by the CLI and the action: a gate failing is a verdict (1), bad input or usage
 * is the user's to fix (2), and anything else is a bug in distill-gate (3), so CI can tell them apart.
 */
export const ExitCode = { pass: 0, gateFailed: 1, badInput: 2, internal: 3 } as const;

/**
 * The one error class for input the user can fix. `culprit` names the file, key, row or tensor
 * shape at fault, so the message can point at it without the caller parsing strings.
 */
export class InputError extends Error {
  readonly culprit: string;
  constructor(culprit: string, message: string) {
    super(`${culprit}: ${message}`);
    this.name = 'InputError';
    this.culprit = culprit;
  }
}

export function isInputError(error: unknown): error is InputError {
  return error instanceof InputError;
}

/**
 * What backends throw when a call's memory does not fit: tfjs-node's ResourceExhausted/OOM, the
 * wasm heap's out-of-bounds access or failed growth, WebGL/WebGPU allocation failures, V8's own.
 * Training halves its batch on these, inference its inference batch.
 */
const OUT_OF_MEMORY =
  /out of memory|\bOOM\b|ResourceExhausted|memory access out of bounds|Cannot enlarge memory|Array buffer allocation failed|allocation failed|Failed to allocate/i;

export function isOutOfMemory(error: unknown): boolean {
  return OUT_OF_MEMORY.test(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

/** Levenshtein distance, for "did you mean" hints on unknown keys and metrics. */
export function editDistance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0];
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j];
      const cost = a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1;
      previous[j] = Math.min(previous[j] + 1, previous[j - 1] + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return previous[b.length];
}

/** The closest candidate within a third of the word's length, or undefined. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.ceil(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

export function didYouMean(word: string, candidates: readonly string[]): string {
  const hint = nearest(word, candidates);
  return hint ? ` Did you mean "${hint}"?` : '';
}
