import { describe, expect, it } from 'vitest';
import { chooseKernelModule, compiledKernel, KERNEL_VARIABLE, kernelBytes } from '../../src/distill/kernel-module.js';
import { InputError } from '../../src/errors.js';

const engineHas = (relaxed: boolean) => (bytes: Uint8Array) => bytes === kernelBytes('simd128') || relaxed;

describe('the choice of kernel module', () => {
  it('takes relaxed SIMD where the engine validates it, else SIMD128, asking the engine about the relaxed module itself', () => {
    const asked: Uint8Array[] = [];
    const validate = (bytes: Uint8Array) => (asked.push(bytes), true);
    expect(chooseKernelModule(undefined, validate)).toBe('relaxed-simd');
    expect(asked).toEqual([kernelBytes('relaxed-simd')]);
    expect(chooseKernelModule(undefined, engineHas(false))).toBe('simd128');
    expect(chooseKernelModule('', engineHas(false))).toBe('simd128');
    expect(chooseKernelModule('auto', engineHas(true))).toBe('relaxed-simd');
  });

  it(`keeps to SIMD128 when ${KERNEL_VARIABLE}=simd128, even where relaxed SIMD runs`, () => {
    expect(chooseKernelModule('simd128', engineHas(true))).toBe('simd128');
    expect(chooseKernelModule(' SIMD128 ', engineHas(true))).toBe('simd128');
    expect(chooseKernelModule('relaxed-simd', engineHas(true))).toBe('relaxed-simd');
  });

  it('reads the environment variable by default', () => {
    const before = process.env[KERNEL_VARIABLE];
    try {
      process.env[KERNEL_VARIABLE] = 'simd128';
      expect(chooseKernelModule()).toBe('simd128');
    } finally {
      if (before === undefined) delete process.env[KERNEL_VARIABLE];
      else process.env[KERNEL_VARIABLE] = before;
    }
  });

  it('refuses an unknown value, and relaxed-simd where the engine lacks it, naming the variable and what to do', () => {
    const thrown = (setting: string, relaxed: boolean) => {
      try {
        chooseKernelModule(setting, engineHas(relaxed));
      } catch (error) {
        return error;
      }
      throw new Error(`${setting} was accepted`);
    };
    const unknown = thrown('fma', true);
    expect(unknown).toBeInstanceOf(InputError);
    expect((unknown as InputError).culprit).toBe(KERNEL_VARIABLE);
    expect((unknown as Error).message).toMatch(
      /"fma" is not a kernel module; set it to auto \(the default\), relaxed-simd or simd128/,
    );
    const missing = thrown('relaxed-simd', false);
    expect(missing).toBeInstanceOf(InputError);
    expect((missing as Error).message).toMatch(
      /does not validate WebAssembly relaxed SIMD: run Node 22 or later, or Node 20 with --experimental-wasm-relaxed-simd/,
    );
  });

  it('compiles each module once', () => {
    expect(compiledKernel('simd128')).toBe(compiledKernel('simd128'));
    expect(compiledKernel('simd128')).not.toBe(compiledKernel('relaxed-simd'));
  });
});
