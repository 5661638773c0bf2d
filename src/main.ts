/**
 * @deprecated The action lives in src/action/ (run.ts). This re-export remains only because
 * test/e2e/faults.test.ts imports '../../src/main.js'; point that import at src/action/run.js and
 * delete this file.
 */
export { run } from './action/run.js';
