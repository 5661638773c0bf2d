// Builds the action's bundle into the given folder (`npm run package` builds dist/; check-dist a
// scratch folder to compare with it): ncc bundles src/index.ts and the teacher worker, each beside
// TF.js's wasm binaries, and licenses.txt lists what they bundle.
// The two ncc builds run at once (each is single-threaded, ~30 s of CPU): the worker's in a folder
// of its own, because ncc deletes every .js below its output folder before it writes.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NCC = createRequire(import.meta.url).resolve('@vercel/ncc/dist/ncc/cli.js');
const WASM = path.join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** Runs node with `args` in the repository; resolves when it exits 0, rejects naming `what` otherwise. */
function node(what, args, quiet) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${what} failed (${signal ?? `exit ${code}`})`)),
    );
  });
}

/** Deletes the .d.ts files below `dir`, then the folders left empty (ncc emits the sources' declarations). */
function prune(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      prune(file);
      if (readdirSync(file).length === 0) rmdirSync(file);
    } else if (entry.name.endsWith('.d.ts')) rmSync(file);
  }
}

/** Builds the bundle into `out` (emptied first). `quiet` drops ncc's build summaries; errors still show. */
export async function packageInto(out, { quiet = false } = {}) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const worker = mkdtempSync(path.join(os.tmpdir(), 'distill-gate-worker-'));
  try {
    const ncc = (entry, dir) => node(`ncc build ${entry}`, [NCC, 'build', entry, '-o', dir, '--minify'], quiet);
    await Promise.all([
      ncc('src/index.ts', out),
      ncc('src/distill/teacher-worker.ts', worker),
      node('scripts/licenses.mjs', [path.join(ROOT, 'scripts/licenses.mjs'), path.join(out, 'licenses.txt')], quiet),
    ]);
    cpSync(worker, path.join(out, 'teacher-worker'), { recursive: true });
  } finally {
    rmSync(worker, { recursive: true, force: true });
  }
  for (const file of readdirSync(WASM).filter((name) => name.endsWith('.wasm'))) {
    copyFileSync(path.join(WASM, file), path.join(out, file));
    copyFileSync(path.join(WASM, file), path.join(out, 'teacher-worker', file));
  }
  prune(out);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: node scripts/package.mjs <output folder>');
    process.exit(2);
  }
  packageInto(path.resolve(out)).catch((error) => {
    console.error(`package: ${error.message}`);
    process.exit(1);
  });
}
