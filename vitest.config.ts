import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // TF.js keeps one global engine per process: files run in separate forks.
    pool: 'forks',
    // The memory tests collect garbage before sampling RSS, so that they see leaks, not GC timing.
    execArgv: ['--expose-gc'],
  },
});
