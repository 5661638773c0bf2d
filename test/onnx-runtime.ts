import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnnxRuntime, INSTALL_ONNXRUNTIME_CPU, type OnnxRuntime } from '../src/models/onnx-runtime.js';

/** The repository root, whose node_modules is where the README's install command puts onnxruntime-node. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * onnxruntime-node is optional (found at run time), installed beside the dev dependencies by the README's test
 * command (and .ci/run, which sets DISTILL_GATE_REQUIRE_ONNXRUNTIME=1 so that its absence fails
 * CI instead of skipping). Elsewhere the tests that need it are skipped, and say so.
 */
export const onnxRuntime: OnnxRuntime | undefined = await findOnnxRuntime([REPO]);

if (!onnxRuntime) {
  const why = `onnxruntime-node is not installed in ${REPO}: the ONNX teacher tests are skipped. Install it with \`${INSTALL_ONNXRUNTIME_CPU}\`.`;
  if (process.env.DISTILL_GATE_REQUIRE_ONNXRUNTIME === '1')
    throw new Error(`${why} (DISTILL_GATE_REQUIRE_ONNXRUNTIME=1 requires it)`);
  console.warn(why);
}

/** Skips a test or suite, with the reason printed above, where onnxruntime-node is not installed. */
export const withoutOnnxRuntime = onnxRuntime === undefined;
