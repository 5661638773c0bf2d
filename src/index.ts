// The action's entry (bundled to dist/index.js): everything happens in src/action/run.ts's run().
import { run } from './action/run.js';

await run();
// A run cut short by a second signal or its budget leaves stages running: exit with the verdict
// already set (process.exitCode) rather than wait for them.
process.exit();
