#!/usr/bin/env node
// Cuts a release (docs/release.md): checks that the tree is clean and dist/ matches a fresh build,
// sets package.json's version, commits, tags vX.Y.Z, moves the major tag (v1) to it, and packs the
// CLI's tarball for the GitHub release. It pushes and creates the release only with --push.
//
//   node scripts/release.mjs 1.2.0 [--dry-run] [--push] [--pack-destination DIR]
//
// Exit codes: 0 done (or the dry run found nothing wrong), 1 a check failed, 2 bad usage.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const USAGE = 'usage: node scripts/release.mjs <version, e.g. 1.2.0> [--dry-run] [--push] [--pack-destination DIR]';

class Refusal extends Error {
  constructor(message, code = 1) {
    super(message);
    this.code = code;
  }
}

function parseArgs(argv) {
  const options = { dryRun: false, push: false, packDestination: undefined, version: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--dry-run') options.dryRun = true;
    else if (arg === '--push') options.push = true;
    else if (arg === '--pack-destination') options.packDestination = argv[++i];
    else if (arg === '-h' || arg === '--help') throw new Refusal(USAGE, 0);
    else if (arg.startsWith('-')) throw new Refusal(`unknown flag ${arg}\n${USAGE}`, 2);
    else if (options.version === undefined) options.version = arg.replace(/^v/, '');
    else throw new Refusal(`one version only (got ${options.version} and ${arg})\n${USAGE}`, 2);
  }
  if (options.version === undefined) throw new Refusal(USAGE, 2);
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(options.version))
    throw new Refusal(`${options.version} is not a version like 1.2.0 (or 1.2.0-rc.1)`, 2);
  if (options.packDestination === '') throw new Refusal(`--pack-destination needs a folder\n${USAGE}`, 2);
  return options;
}

const run = (command, args, options = {}) =>
  execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options }).trim();
const git = (...args) => run('git', args);
const gitOk = (...args) => {
  try {
    git(...args);
    return true;
  } catch {
    return false;
  }
};

/** Compares two x.y.z versions (a pre-release sorts before its release). */
function compareVersions(a, b) {
  const parts = (v) => {
    const [core, pre] = v.split('-', 2);
    return [...core.split('.').map(Number), pre === undefined ? Infinity : pre];
  };
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < 4; i++) {
    if (pa[i] === pb[i]) continue;
    if (typeof pa[i] === 'number' && typeof pb[i] === 'number') return pa[i] - pb[i];
    return String(pa[i]) < String(pb[i]) ? -1 : 1;
  }
  return 0;
}

function release(options) {
  const { version, dryRun, push } = options;
  const tag = `v${version}`;
  const major = `v${version.split('.')[0]}`;
  const say = (line) => console.log(`${dryRun ? 'would: ' : ''}${line}`);

  if (!gitOk('rev-parse', '--show-toplevel')) throw new Refusal('not in a git repository');
  process.chdir(git('rev-parse', '--show-toplevel'));
  const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
  if (gitOk('rev-parse', '-q', '--verify', `refs/tags/${tag}`)) throw new Refusal(`the tag ${tag} exists already`);
  // The same version as package.json's is allowed: bumped by hand, not tagged yet.
  if (compareVersions(version, manifest.version) < 0)
    throw new Refusal(`${version} is before package.json's ${manifest.version}`, 2);

  // 1. A clean tree: the release commit holds exactly what was reviewed, and nothing unstaged is packed.
  const dirty = git('status', '--porcelain');
  if (dirty) throw new Refusal(`the working tree is not clean; commit or stash first:\n${dirty}`);
  console.log(
    `ok: the working tree is clean (${git('rev-parse', '--abbrev-ref', 'HEAD')} at ${git('rev-parse', '--short', 'HEAD')})`,
  );

  // 2. dist/ as a fresh build makes it: the v1 tag's commit is what `uses: …@v1` runs.
  try {
    run('npm', ['run', '--silent', 'check-dist'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Refusal(
      `dist/ is not in sync with src/ (npm run check-dist):\n${(error.stderr || error.stdout || error.message).toString().trim()}\nRun \`npm run package\`, commit dist/, and release again.`,
    );
  }
  if (!existsSync('dist/index.js'))
    throw new Refusal('dist/index.js is missing: the action runs it (npm run package builds it)');
  console.log('ok: dist/ matches a fresh build (npm run check-dist)');

  // 3. The version, its commit and its tags.
  say(`set package.json's version to ${version} (was ${manifest.version}) and commit "Release ${tag}"`);
  if (!dryRun) {
    run('npm', ['version', version, '--no-git-tag-version', '--allow-same-version']);
    git('add', 'package.json', ...(existsSync('package-lock.json') ? ['package-lock.json'] : []));
    git('commit', '-q', '-m', `Release ${tag}`);
  }
  say(`tag ${tag}, and move ${major} to it`);
  if (!dryRun) {
    git('tag', '-a', tag, '-m', `distill-gate ${tag}`);
    git('tag', '-f', '-a', major, '-m', `distill-gate ${major}: ${tag}`, `${tag}^{commit}`);
    if (!gitOk('cat-file', '-e', `${tag}:dist/index.js`))
      throw new Refusal(`${tag} has no dist/index.js: the action could not run from it`);
  }

  // 4. The CLI's tarball for the GitHub release (npm pack runs `prepare`, which builds lib/).
  const destination = path.resolve(
    options.packDestination ?? path.join(os.tmpdir(), `distill-gate-release-${version}`),
  );
  const tarball = path.join(destination, `${manifest.name}-${version}.tgz`);
  say(`pack ${tarball}`);
  if (!dryRun) {
    mkdirSync(destination, { recursive: true });
    run('npm', ['pack', '--silent', '--pack-destination', destination], { stdio: ['ignore', 'pipe', 'inherit'] });
    if (!existsSync(tarball)) throw new Refusal(`npm pack wrote no ${tarball}`);
  }

  // 5. Push and publish only when asked.
  const remote = 'origin';
  const pushes = [
    ['git', 'push', remote, 'HEAD', tag],
    ['git', 'push', '--force', remote, major],
  ];
  const publish = [
    'gh',
    'release',
    'create',
    tag,
    tarball,
    '--title',
    `distill-gate ${tag}`,
    '--notes',
    `See CHANGELOG.md. CLI: npm install <this release's ${path.basename(tarball)} URL>`,
  ];
  const shell = (argv) =>
    argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
  if (!push) {
    console.log(`\nnot pushed (no --push). To publish ${tag}:`);
    for (const argv of [...pushes, publish]) console.log(`  ${shell(argv)}`);
    return;
  }
  for (const argv of pushes) {
    say(shell(argv));
    if (!dryRun) run(argv[0], argv.slice(1), { stdio: 'inherit' });
  }
  let hasGh = true;
  try {
    run('gh', ['--version']);
  } catch {
    hasGh = false;
  }
  if (!hasGh) {
    console.log(`gh is not installed: create the release by hand, attaching ${tarball}:\n  ${shell(publish)}`);
    return;
  }
  say(shell(publish));
  if (!dryRun) run(publish[0], publish.slice(1), { stdio: 'inherit' });
}

try {
  release(parseArgs(process.argv.slice(2)));
} catch (error) {
  if (!(error instanceof Refusal)) throw error;
  (error.code === 0 ? console.log : console.error)(error.code === 0 ? error.message : `release: ${error.message}`);
  process.exitCode = error.code;
}
