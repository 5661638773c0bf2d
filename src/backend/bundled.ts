import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as bundledTf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

/** The backends bundled with distill-gate, which need nothing installed on the runner. */
export type BundledBackend = 'wasm' | 'cpu';

/**
 * Initialises a bundled backend. Kept apart from resolve.ts so that the teacher's worker threads,
 * which only ever run these, do not bundle the WebGPU backend that resolve.ts can load.
 */
export async function initialiseBundled(name: BundledBackend): Promise<typeof bundledTf> {
  if (name === 'wasm') {
    const directory = wasmDirectory();
    // The wasm backend's Emscripten loader reads the CommonJS `__dirname` under Node; inside the
    // ESM bundle that name does not exist, so it is provided globally before initialisation.
    const globals = globalThis as { __dirname?: string };
    globals.__dirname ??= directory;
    setWasmPaths(directory);
  }
  // setBackend resolves false (it does not throw) when initialisation fails; later ops would
  // then run on whatever backend was left, so the result is checked.
  if (!(await bundledTf.setBackend(name)) || bundledTf.getBackend() !== name) {
    throw new Error(`the bundled TF.js "${name}" backend did not initialise.`);
  }
  // The cpu backend greets its first tensor with advice to install tfjs-node; distill-gate's log
  // already says which backend it chose and why, so the greeting is switched off.
  const active = bundledTf.backend() as { firstUse?: boolean };
  if ('firstUse' in active) active.firstUse = false;
  return bundledTf;
}

/**
 * The wasm binaries sit beside the ncc bundle (copied by `npm run package`) or in the installed
 * package; the bundled file is preferred so that the action needs no node_modules.
 */
function wasmDirectory(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  if (existsSync(path.join(here, 'tfjs-backend-wasm-simd.wasm'))) return `${here}${path.sep}`;
  const require = createRequire(import.meta.url);
  const pkg = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  return `${path.join(pkg, 'dist')}${path.sep}`;
}
