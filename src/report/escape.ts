/**
 * Makes untrusted text (paths, layer and metric names, labels, anything a PR controls) inert in
 * GitHub markdown: no HTML (which could close the sticky comment's marker or inject elements), no
 * mentions that would notify people, no table-breaking pipes, no code spans or links.
 */
export function escapeMarkdown(text: string): string {
  return (
    String(text)
      .replace(/[\r\n]+/g, ' ')
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
