// Fails when the committed dist/ differs from a fresh `npm run package`: the action runs
// dist/index.js, so a src/ change without a rebuild would ship stale code.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const fresh = mkdtempSync(path.join(os.tmpdir(), 'distill-gate-dist-'));
try {
  execFileSync('npx', ['ncc', 'build', 'src/index.ts', '-o', fresh, '--minify', '--license', 'licenses.txt', '--quiet'], { stdio: 'inherit' });
  const stale = ['index.js', 'licenses.txt'].filter((file) => !readFileSync(path.join('dist', file)).equals(readFileSync(path.join(fresh, file))));
  const wasm = readdirSync('node_modules/@tensorflow/tfjs-backend-wasm/dist').filter((f) => f.endsWith('.wasm'));
  stale.push(...wasm.filter((file) => {
    try {
      return !readFileSync(path.join('dist', file)).equals(readFileSync(path.join('node_modules/@tensorflow/tfjs-backend-wasm/dist', file)));
    } catch {
      return true;
    }
  }));
  if (stale.length > 0) {
    console.error(`dist/ is out of date (${stale.join(', ')}): run \`npm run package\` and commit dist/.`);
    process.exit(1);
  }
  console.log('dist/ matches a fresh build');
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
