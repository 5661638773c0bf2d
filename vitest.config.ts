import os from 'node:os';
import { defineConfig } from 'vitest/config';
import { NET_KD_RELAXED_WASM } from './src/distill/kernel/net-kd-relaxed-wasm.js';

// The kernel tests run both builds of the training kernel (src/distill/kernel-module.ts). Node 22
// and later validate relaxed SIMD; Node 20 does only with this V8 flag, which the test processes
// then get (test/distill/kernel-build.test.ts fails where they still cannot run it).
const relaxedSimd = WebAssembly.validate(Buffer.from(NET_KD_RELAXED_WASM, 'base64'))
  ? []
  : ['--experimental-wasm-relaxed-simd'];

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
    // The memory tests collect garbage before sampling RSS, so that they see leaks, not GC timing.
    execArgv: ['--expose-gc', ...relaxedSimd],
  },
});
