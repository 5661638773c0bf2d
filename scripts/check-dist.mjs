// Fails when the committed dist/ differs from a fresh `npm run package`: the action runs
// dist/index.js (and its chunks and worker), so a src/ change without a rebuild would ship stale code.
// The fresh build is scripts/package.mjs's, as `npm run package` makes it, into a scratch folder.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageInto } from './package.mjs';

const files = (dir) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath ?? e.path, e.name)))
    .sort();

const fresh = mkdtempSync(path.join(os.tmpdir(), 'distill-gate-dist-'));
try {
  await packageInto(fresh, { quiet: true });
  const committed = files('dist');
  const stale = [...new Set([...committed, ...files(fresh)])].filter((file) => {
    try {
      return !readFileSync(path.join('dist', file)).equals(readFileSync(path.join(fresh, file)));
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    console.error(`dist/ is out of date (${stale.join(', ')}): run \`npm run package\` and commit dist/.`);
    process.exitCode = 1;
  } else console.log(`dist/ matches a fresh build (${committed.length} files)`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
