// The action's entry (bundled to dist/index.js): everything happens in main.ts's run().
import { run } from './main.js';

await run();
