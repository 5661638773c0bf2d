// The checks `npm test` runs before vitest: the type check and then lint, and beside them
// check-dist, whose two ncc builds take longer than both (each of these is mostly one core's work;
// a 2-core runner did them one after another). Each chain stops at its first failing script, as
// `&&` would; a script's output is printed whole once it ends, so that the chains do not interleave.
import { spawn } from 'node:child_process';

const CHAINS = [['typecheck', 'lint'], ['check-dist']];
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Runs `npm run <script>`, its stdout and stderr together; resolves to its exit code and output. */
function run(script) {
  return new Promise((resolve) => {
    const child = spawn(npm, ['run', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', (error) => resolve({ code: 1, output: `${output}${error.message}\n` }));
    child.on('close', (code, signal) =>
      resolve({ code: code ?? 1, output: signal ? `${output}(${signal})\n` : output }),
    );
  });
}

const failed = [];
await Promise.all(
  CHAINS.map(async (chain) => {
    for (const script of chain) {
      const { code, output } = await run(script);
      process.stdout.write(output);
      if (code !== 0) {
        failed.push(script);
        return;
      }
    }
  }),
);
if (failed.length > 0) {
  console.error(`checks: ${failed.join(', ')} failed (npm run ${failed[0]} alone to see it again)`);
  process.exit(1);
}
