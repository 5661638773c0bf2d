import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The CLI's reference: docs/cli.md where the docs have moved there, else the README. */
const CLI_DOCS = existsSync(path.join(ROOT, 'docs/cli.md')) ? 'docs/cli.md' : 'README.md';

async function help(...args: string[]): Promise<string> {
  const capture = captureIo();
  expect(await main([...args, '--help'], capture.io)).toBe(0);
  return capture.stdout();
}

/** The long flags a help text lists, e.g. ["--config", "--out"]. */
const flagsIn = (text: string): string[] => [...new Set(text.match(/(?<![\w#-])--[a-z][a-z0-9-]*/g) ?? [])];

/**
 * The flags the docs name for distill-gate: every `--flag` in the text, except on a line that runs
 * npm or npx, where only those after `distill-gate` are its own (`npx --script-shell=bash distill-gate run`).
 */
function documentedFlags(text: string): string[] {
  const lines = text.split('\n').map((line) =>
    /\bnp[mx]\b/.test(line)
      ? (line
          .split(/\bdistill-gate\b/)
          .slice(1)
          .join(' ') ?? '')
      : line,
  );
  return flagsIn(lines.join('\n'));
}

/** The docs' command table: `| \`run\` | flags | what it does |` rows, by command. */
function commandTable(text: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of text.matchAll(/^\| `([a-z]+)[^`]*` \| ([^|]*) \|/gm)) rows.set(m[1], m[2]);
  return rows;
}

describe('distill-gate --version and --help', () => {
  it("--version (and -V) prints package.json's version and exits 0", async () => {
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const capture = captureIo();
      expect(await main([flag], capture.io)).toBe(0);
      expect(capture.stdout()).toBe(`${version}\n`);
    }
  });

  it('--help lists every command with one line and says where each command lists its flags', async () => {
    const text = await help();
    for (const command of ['run', 'compare', 'merge', 'history', 'doctor'])
      expect(text).toMatch(new RegExp(`^ {2}${command}\\b.* {2}\\S`, 'm'));
    expect(text).toContain('-V, --version');
    expect(text).toContain("Each command's flags: distill-gate <command> --help");
  });

  it('without a command: a one-line hint, then the help, on stderr, exit 2', async () => {
    const capture = captureIo();
    expect(await main([], capture.io)).toBe(2);
    const [hint, ...rest] = capture.stderr().split('\n');
    expect(hint).toMatch(/^distill-gate: no command given: run `distill-gate run`/);
    expect(rest.join('\n')).toContain('Usage: distill-gate [options] [command]');
    expect(capture.stdout()).toBe('');
  });
});

describe(`the CLI reference (${CLI_DOCS}) against commander's help`, () => {
  it('names no flag that the CLI does not have', async () => {
    const docs = await readFile(path.join(ROOT, CLI_DOCS), 'utf8');
    const commands = [...(await help()).matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]).filter((c) => c !== 'help');
    const known = new Set(
      flagsIn([await help(), ...(await Promise.all(commands.map((command) => help(command))))].join('\n')),
    );
    const documented = documentedFlags(docs);
    expect(documented.length).toBeGreaterThan(0);
    expect(documented.filter((flag) => !known.has(flag))).toEqual([]);
  });

  it("lists, in its command table, each documented command's flags as its --help does", async () => {
    const docs = await readFile(path.join(ROOT, CLI_DOCS), 'utf8');
    const table = commandTable(docs);
    if (table.size === 0) return expect(CLI_DOCS).toBe('README.md'); // the README may only link to docs/cli.md
    for (const [command, flagsCell] of table) {
      const own = flagsIn(await help(command)).filter((flag) => flag !== '--help');
      expect(flagsIn(flagsCell).sort(), `${CLI_DOCS}: ${command}'s flags`).toEqual(own.sort());
    }
  });
});
