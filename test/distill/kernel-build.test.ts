import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NET_KD_WASM } from '../../src/distill/kernel/net-kd-wasm.js';

function hasClang(): boolean {
  try {
    execFileSync('clang', ['--version'], { stdio: 'ignore' });
    execFileSync('wasm-ld', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('the committed WebAssembly kernel', () => {
  it('is a valid module with the step export and only the Math imports', () => {
    const module = new WebAssembly.Module(Buffer.from(NET_KD_WASM, 'base64'));
    expect(
      WebAssembly.Module.exports(module)
        .map((e) => e.name)
        .sort(),
    ).toEqual(['__heap_base', 'memory', 'step']);
    expect(
      WebAssembly.Module.imports(module)
        .map((i) => `${i.module}.${i.name}`)
        .sort(),
    ).toEqual(['env.exp', 'env.log']);
  });

  // Where clang and wasm-ld are installed (apt-get install clang lld), the committed bytes must be
  // what the C source compiles to; elsewhere (CI) the check is skipped.
  it.skipIf(!hasClang())('matches a fresh build of kernel/net_kd.c', () => {
    const output = execFileSync(process.execPath, [path.join(import.meta.dirname, '../../scripts/build-kernel.mjs'), '--check'], { encoding: 'utf8' });
    expect(output).toMatch(/matches net_kd\.c/);
  });
});
