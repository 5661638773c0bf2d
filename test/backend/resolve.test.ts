import { describe, expect, it } from 'vitest';
import { resolveBackend } from '../../src/backend/resolve.js';
import { doctor } from '../../src/backend/doctor.js';
import { InputError } from '../../src/errors.js';

const notInstalled = async () => undefined;

describe('backend resolution', () => {
  it('auto passes over the missing native packages, says why, and lands on wasm', async () => {
    const backend = await resolveBackend('auto', { importPackage: notInstalled, searchFrom: ['/ws'] });
    expect(backend.name).toBe('wasm');
    expect(backend.tf.getBackend()).toBe('wasm');
    expect(backend.notes).toHaveLength(3);
    expect(backend.notes[0]).toMatch(
      /^tensorflow-gpu: @tensorflow\/tfjs-node-gpu is not installed in \/ws\. Install it .*npm install --no-save @tensorflow\/tfjs-node-gpu@4\.22\.0.*CUDA 11\.2/,
    );
    expect(backend.notes[1]).toMatch(
      /^webgpu: the `webgpu` package \(Dawn\) is not installed in \/ws\. Install it .*npm install --no-save webgpu@0\.6\.2/,
    );
    expect(backend.notes[2]).toMatch(/^tensorflow: @tensorflow\/tfjs-node is not installed/);
  });

  it('a native backend asked for by name and missing is an input error with the install command', async () => {
    const error = await resolveBackend('tensorflow-gpu', { importPackage: notInstalled, searchFrom: ['/ws'] }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/backend "tensorflow-gpu": .*npm install --no-save @tensorflow\/tfjs-node-gpu/);
  });

  it("a native package that fails to load (e.g. CUDA 11 libraries missing) is skipped by auto with the loader's reason", async () => {
    const importPackage = async (name: string) => {
      if (name === '@tensorflow/tfjs-node-gpu') throw new Error('libcudart.so.11.0: cannot open shared object file');
      return undefined;
    };
    const backend = await resolveBackend('auto', { importPackage });
    expect(backend.notes[0]).toBe('tensorflow-gpu: libcudart.so.11.0: cannot open shared object file');
  });

  it('takes the tf handle from a native package that loads, and uses its tensorflow backend', async () => {
    let backendSet = '';
    const fakeTf = { setBackend: async (name: string) => ((backendSet = name), true), getBackend: () => backendSet };
    const importPackage = async (name: string) =>
      name === '@tensorflow/tfjs-node-gpu'
        ? { module: { default: fakeTf }, path: '/ws/node_modules/@tensorflow/tfjs-node-gpu/dist/index.js' }
        : undefined;
    const backend = await resolveBackend('auto', { importPackage });
    expect(backend.name).toBe('tensorflow-gpu');
    expect(backend.tf).toBe(fakeTf);
    expect(backend.source).toContain('tfjs-node-gpu');
    expect(backendSet).toBe('tensorflow');
    // What tf.setBackend must be given to come back to it: the registry's name, not the option's.
    expect(backend.engine).toBe('tensorflow');
  });

  it('never finds the native packages in this repository (the build and tests must not need them)', async () => {
    const backend = await resolveBackend('auto');
    expect(['wasm', 'cpu']).toContain(backend.name);
  });

  it('doctor lists every backend, what auto picks, and the CUDA libraries tfjs-node-gpu needs', async () => {
    const text = await doctor({
      importPackage: notInstalled,
      listLibraries: async () => '\tlibcudart.so.11.0 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.11.0\n',
    });
    expect(text).toMatch(/missing\s+tensorflow-gpu/);
    expect(text).toMatch(/missing\s+webgpu\s+the `webgpu` package \(Dawn\) is not installed/);
    expect(text).toMatch(/ok\s+wasm/);
    expect(text).toMatch(/ok\s+cpu/);
    expect(text).toMatch(/auto picks: wasm/);
    expect(text).toMatch(/found\s+libcudart\.so\.11\.0/);
    expect(text).toMatch(/missing\s+libcudnn\.so\.8/);
  });

  it('doctor shows a software WebGPU adapter as usable by name only', async () => {
    const text = await doctor();
    expect(text).toMatch(/ok\s+webgpu\s+.*llvmpipe.*software.*a software adapter: auto skips it/);
    expect(text).toMatch(/auto picks: wasm/);
  });
});
