// A run that must be refused before any training, for the stage tests. Apart from test/helpers.ts
// because it imports the pipeline, and with it the TF.js backends: a test file that only wants a
// helper would otherwise register the wasm backend (and make it TF.js's default) on import.
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { InputError } from '../../src/errors.js';
import { runPipeline } from '../../src/pipeline.js';

/**
 * The message of the InputError that running the workspace's distill-gate.yml through the pipeline
 * gives; fails the test when the run does not throw one, or logs an epoch first (a refusal must
 * come before any training).
 */
export async function refusalBeforeTraining(dir: string): Promise<string> {
  const config = await loadConfig(path.join(dir, 'distill-gate.yml'));
  const lines: string[] = [];
  const error = await runPipeline(config, {
    outDir: path.join(dir, 'out'),
    searchFrom: [dir],
    log: (line) => lines.push(line),
  }).catch((e: unknown) => e);
  if (!(error instanceof InputError)) throw new Error(`expected an InputError, got ${String(error)}`);
  if (lines.some((line) => line.startsWith('epoch')))
    throw new Error(`refused after training began:\n${lines.join('\n')}`);
  return error.message;
}
