#!/usr/bin/env node
// Loading the library takes a second or two: a cancel in that time has nothing to report yet, but
// must not kill the process without a word (Node's default for SIGINT and SIGTERM).
const early = (signal: NodeJS.Signals) => {
  process.stderr.write(
    `distill-gate: cancelled: received ${signal} while starting: nothing was run and no report was written\n`,
  );
  process.exit(1);
};
process.once('SIGINT', early);
process.once('SIGTERM', early);
const { main } = await import('./main.js');
process.off('SIGINT', early);
process.off('SIGTERM', early);

// Exit at once: a run cut short by a second signal or its budget leaves stages running. The
// launchers are watched here only, in the CLI's own process (see launchers.ts).
process.exit(await main(process.argv.slice(2), undefined, { watchLaunchers: true }));
