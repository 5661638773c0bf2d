// What the tests need beyond `npm ci`, installed by `npm test` (its pretest) where missing, each
// step saying what it did, or what it skipped and why:
// - Mesa's EGL, GLES and llvmpipe (Debian packages, through scripts/setup-test-deps.sh), on which
//   Dawn's OpenGL ES backend gives the WebGPU tests a software adapter, and clang, lld, clang-19 and
//   lld-19, which build the WebAssembly kernel's two modules for its check: only where apt-get exists.
// - onnxruntime-node, optional for users and found at run time, for the ONNX teacher tests:
//   installed as users install it (--no-save, its CUDA download skipped).
// Where the ONNX tests must not be skipped (DISTILL_GATE_REQUIRE_ONNXRUNTIME=1, which .ci/run
// sets, or CI=true), a failed install fails here rather than later as skipped tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ONNXRUNTIME = { name: 'onnxruntime-node', version: '1.30.0' };
const strict = process.env.DISTILL_GATE_REQUIRE_ONNXRUNTIME === '1' || process.env.CI === 'true';
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const say = (line) => console.log(`test-deps: ${line}`);
const onPath = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

function mesa() {
  if (process.platform !== 'linux' || !onPath('apt-get') || !onPath('dpkg')) {
    say(
      'Mesa (libegl1 libgles2 libgl1-mesa-dri): skipped, no apt-get and dpkg here. The WebGPU tests need EGL, GLES and ' +
        "a software OpenGL driver (Mesa's llvmpipe): install them with the system's package manager, or expect those tests to fail.",
    );
    return true;
  }
  const result = spawnSync('bash', [path.join(ROOT, 'scripts/setup-test-deps.sh')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status === 0) {
    say('Mesa (libegl1 libgles2 libgl1-mesa-dri), clang, lld, clang-19 and lld-19 (the kernel check): in place.');
    return true;
  }
  say(
    `Mesa, clang, lld, clang-19 and lld-19: scripts/setup-test-deps.sh failed (exit ${result.status ?? result.signal}); the WebGPU tests will fail without Mesa, and the kernel check is skipped without clang or clang-19.`,
  );
  return !strict;
}

/** The version of a package installed at the root's node_modules, or undefined. */
function installedVersion(name) {
  const manifest = path.join(ROOT, 'node_modules', name, 'package.json');
  return existsSync(manifest) ? JSON.parse(readFileSync(manifest, 'utf8')).version : undefined;
}

/**
 * What an earlier `npm install --no-save` put in node_modules (npm lists it as extraneous): an
 * install prunes it unless named again, e.g. a @tensorflow/tfjs-node installed to try a backend.
 */
function extraneousPackages() {
  const listed = spawnSync(npm, ['ls', '--depth=0', '--json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  try {
    const dependencies = JSON.parse(listed.stdout).dependencies ?? {};
    return Object.entries(dependencies)
      .filter(([name, dependency]) => dependency.extraneous && dependency.version && name !== ONNXRUNTIME.name)
      .map(([name, dependency]) => `${name}@${dependency.version}`);
  } catch {
    return [];
  }
}

function onnxRuntime() {
  const wanted = `${ONNXRUNTIME.name}@${ONNXRUNTIME.version}`;
  const version = installedVersion(ONNXRUNTIME.name);
  if (version) {
    say(
      `${ONNXRUNTIME.name} ${version}: already installed${version === ONNXRUNTIME.version ? '' : ` (the tests expect ${ONNXRUNTIME.version})`}.`,
    );
    return true;
  }
  if (!existsSync(path.join(ROOT, 'node_modules'))) {
    say(`${wanted}: not installed, and there is no node_modules: run npm ci first.`);
    return !strict;
  }
  const kept = extraneousPackages();
  say(
    `installing ${wanted} for the ONNX teacher tests (ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save)${kept.length ? `, naming again ${kept.join(' ')}` : ''}`,
  );
  const result = spawnSync(npm, ['install', '--no-save', '--no-audit', '--no-fund', wanted, ...kept], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  if (result.status === 0 && installedVersion(ONNXRUNTIME.name)) return true;
  say(
    `${wanted}: the install failed (exit ${result.status ?? result.signal}); ` +
      (strict ? 'the ONNX teacher tests are required here, so this fails.' : 'the ONNX teacher tests will be skipped.'),
  );
  return !strict;
}

const ok = [mesa(), onnxRuntime()].every(Boolean);
process.exit(ok ? 0 : 1);
