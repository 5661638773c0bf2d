/**
 * Characters that change how the text around them is shown without being seen themselves: bidi
 * controls (U+202A-U+202E embeddings and overrides, U+2066-U+2069 isolates, U+200E/U+200F and
 * U+061C marks), which can make a failing line read as a passing one ("Trojan Source"), and the
 * other invisible format and control characters (zero-width spaces and joiners, U+2060-U+2064,
 * the byte-order mark, Unicode tags, C0 and C1 controls). Each is shown as its code point instead.
 */
const INVISIBLE = /[\p{Bidi_Control}\p{Cf}\p{Cc}\u2028\u2029]/gu;

/**
 * Makes untrusted text (paths, layer and metric names, labels, anything a PR controls) inert in
 * GitHub markdown: no HTML (which could close the sticky comment's marker or inject elements), no
 * mentions that would notify people, no table-breaking pipes, no code spans or links, and no bidi
 * or other invisible characters (shown as `[U+202E]`).
 */
export function escapeMarkdown(text: string): string {
  return (
    String(text)
      .replace(/[\r\n]+/g, ' ')
      .replace(/\t/g, ' ')
      .replace(INVISIBLE, (c) => codePointLabel(c))
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/[\\`*_{}[\]()#+!|~]/g, (c) => `\\${c}`)
      // A zero-width space after @ stops GitHub from turning @name into a mention, and one inside
      // "://" and "www." stops it from turning a bare address into a link.
      .replace(/@/g, '@\u200b')
      .replace(/:\/\//g, ':\u200b//')
      .replace(/\bwww\./gi, (www) => `${www.slice(0, 3)}\u200b.`)
  );
}

/** `[U+202E]`: an invisible character (one INVISIBLE matched) as its code point. */
function codePointLabel(c: string): string {
  const point = c.codePointAt(0);
  if (point === undefined) throw new Error('escapeMarkdown: INVISIBLE matched an empty string');
  return `[U+${point.toString(16).toUpperCase().padStart(4, '0')}]`;
}
