// The action's entry (bundled to dist/index.js): everything happens in src/action/run.ts's run().
import { run } from './action/run.js';

await run();
