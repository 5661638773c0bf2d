import { readFileSync } from 'node:fs';

// What the top-level program says about itself: its version (package.json's), the line after its
// command list, and the hint before the help when no command is given.

/**
 * The version in package.json, two folders up from this module both as source (src/cli/) and as
 * compiled (lib/cli/), in this repository and in an installed package alike.
 */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

/** After the top-level help's command list: each command's help lists its flags. */
export const COMMANDS_HELP_FOOTER = `
Each command's flags: distill-gate <command> --help (e.g. distill-gate run --help).
Exit codes: 0 pass, 1 a gate failed (or the run was cut short), 2 bad input, 3 a bug in distill-gate.
`;

/** Printed before the help (on stderr) when the CLI is run without a command, which exits 2. */
export const NO_COMMAND_HINT =
  'distill-gate: no command given: run `distill-gate run` (reads ./distill-gate.yml), or `distill-gate <command> --help`.\n';
