import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { NET_KD_RELAXED_WASM } from './src/distill/kernel/net-kd-relaxed-wasm.js';

// The kernel tests run both builds of the training kernel (src/distill/kernel-module.ts). Node 22
// and later validate relaxed SIMD; Node 20 does only with this V8 flag, which the test processes
// then get (test/distill/kernel-build.test.ts fails where they still cannot run it).
const relaxedSimd = WebAssembly.validate(Buffer.from(NET_KD_RELAXED_WASM, 'base64'))
  ? []
  : ['--experimental-wasm-relaxed-simd'];

// Without the timings of an earlier run (a fresh clone, as CI's), vitest starts the largest files
// first. These folders run the CLI or the action end to end, long for their size (the corpus's cases
// live in other files): they start first, so that no fork is left alone on one of them at the end.
const SLOW_FIRST = ['test/e2e/', 'test/corpus/', 'test/cli/'];
class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const slow = (file: TestSpecification) => {
      const relative = path.relative(file.project.config.root, file.moduleId).replaceAll(path.sep, '/');
      return SLOW_FIRST.some((folder) => relative.startsWith(folder)) ? 0 : 1;
    };
    // Array.prototype.sort is stable: vitest's order (by earlier timings, else size) holds within each.
    return (await super.sort(files)).sort((a, b) => slow(a) - slow(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // TF.js keeps one global engine per process: files run in separate forks.
    pool: 'forks',
    // A fork per core. vitest's default keeps one core for its own process, which waits while the
    // files run: on a 2-core runner that ran the files one at a time, one core idle.
    maxWorkers: os.availableParallelism(),
    sequence: { sequencer: SlowFirst },
    // The memory tests collect garbage before sampling RSS, so that they see leaks, not GC timing.
    execArgv: ['--expose-gc', ...relaxedSimd],
  },
});
