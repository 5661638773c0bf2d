/**
 * Dawn prints its warnings ("Couldn't load Vulkan ... /home/runner/work/node-webgpu/...") from
 * native code, where nothing in the process can catch them: the adapter search runs in a child
 * process, whose stderr is kept for `doctor`, and Dawn creates nothing in the run's process unless
 * that search found an adapter the run will use. Fake Dawn modules stand in for the `webgpu`
 * package here, so these hold on any machine.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeChoice, resolveBackend } from '../../src/backend/resolve.js';
import { doctor } from '../../src/backend/doctor.js';
import { searchAdapterApart } from '../../src/backend/webgpu.js';

const VULKAN_WARNING =
  "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory\n    at operator() (/home/runner/work/node-webgpu/node-webgpu/third_party/dawn/src/dawn/native/vulkan/BackendVk.cpp:368)";

type Info = { vendor?: string; device?: string; description?: string; architecture?: string } | null;

/** A stand-in for the `webgpu` package: prints to stderr as Dawn does, then answers per Dawn backend. */
async function fakeDawn(
  adapters: Record<string, Info>,
  prelude = `process.stderr.write(${JSON.stringify(`${VULKAN_WARNING}\n`)});`,
): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fake-dawn-'));
  const file = path.join(dir, 'index.mjs');
  await writeFile(
    file,
    `${prelude}
const ADAPTERS = ${JSON.stringify(adapters)};
export const globals = {};
export function create(flags) {
  const name = flags[0].replace('backend=', '');
  return { requestAdapter: async () => (ADAPTERS[name] ? { info: ADAPTERS[name], requestDevice: async () => ({ destroy() {} }) } : null) };
}
`,
  );
  return file;
}

const GPU = { vendor: 'nvidia', architecture: 'ampere', device: 'A10G', description: 'NVIDIA A10G' };
const LLVMPIPE = { vendor: 'mesa', device: 'llvmpipe (LLVM 15.0.6, 256 bits)', description: 'OpenGL ES 3.2 Mesa' };

describe('the WebGPU adapter search, apart from the run', () => {
  it("keeps Dawn's stderr apart and finds a hardware adapter", async () => {
    const search = await searchAdapterApart(await fakeDawn({ vulkan: GPU, opengles: LLVMPIPE }), false);
    expect(search.adapter).toMatchObject({ dawnBackend: 'vulkan', device: 'A10G', software: false });
    expect(search.dawnBackend).toBe('vulkan');
    expect(search.featureLevel).toBeUndefined();
    expect(search.nativeLines.join('\n')).toBe(VULKAN_WARNING);
  });

  it('passes over a software adapter unless asked by name, with the feature level of the Dawn backend that found it', async () => {
    const module = await fakeDawn({ vulkan: null, opengles: LLVMPIPE });
    const auto = await searchAdapterApart(module, false);
    expect(auto.adapter).toBeUndefined();
    expect(auto.notes).toEqual([
      expect.stringMatching(/^vulkan: no adapter \(libvulkan1 and a Vulkan driver/),
      expect.stringMatching(/^opengles: only a software adapter \(.*llvmpipe.*\), which auto never picks/),
    ]);
    const named = await searchAdapterApart(module, true);
    expect(named).toMatchObject({
      dawnBackend: 'opengles',
      featureLevel: 'compatibility',
      adapter: { software: true },
    });
  });

  it('a child that crashes or hangs costs the webgpu backend, not the run', async () => {
    const crashing = await searchAdapterApart(
      await fakeDawn(
        { vulkan: GPU },
        'process.stderr.write("Segmentation fault in dawn\\n"); process.kill(process.pid, "SIGSEGV");',
      ),
      false,
    );
    expect(crashing.adapter).toBeUndefined();
    expect(crashing.notes).toEqual(['the adapter search ended with signal SIGSEGV (Segmentation fault in dawn)']);
    const hanging = await searchAdapterApart(
      await fakeDawn({ vulkan: GPU }, 'await new Promise(() => setInterval(() => {}, 1000));'),
      false,
      {
        timeoutMs: 300,
      },
    );
    expect(hanging.adapter).toBeUndefined();
    expect(hanging.notes[0]).toMatch(/^the adapter search did not end within 300 ms$/);
  });

  it('auto never lets Dawn create anything in the run process when the search finds no usable adapter', async () => {
    const module = await fakeDawn({ vulkan: null, opengles: LLVMPIPE });
    let created = 0;
    const inProcess = {
      globals: {},
      create: () => {
        created++;
        throw new Error('Dawn was created in the run process');
      },
    };
    const importPackage = async (name: string) => (name === 'webgpu' ? { module: inProcess, path: module } : undefined);
    const backend = await resolveBackend('auto', { importPackage });
    expect(backend.name).toBe('wasm');
    expect(created).toBe(0);
    expect(backend.notes.find((n) => n.startsWith('webgpu:'))).toMatch(
      /^webgpu: no usable WebGPU adapter: vulkan: no adapter.*opengles: only a software adapter/,
    );
  });

  it('the run log says which backend in one line, with a word for each one passed over', async () => {
    const importPackage = async () => undefined;
    const backend = await resolveBackend('auto', { importPackage, searchFrom: ['/ws'] });
    const line = describeChoice({
      ...backend,
      notes: [
        ...backend.notes.slice(0, 1),
        'webgpu: no usable WebGPU adapter: vulkan: no adapter; opengles: only a software adapter (llvmpipe)',
        backend.notes[2],
      ],
    });
    expect(line).toBe(
      'backend: using wasm (bundled); passed over tensorflow-gpu (not installed), webgpu (only a software adapter), tensorflow (not installed); `distill-gate doctor` says more',
    );
    // An installed package that fails to load is a fault to fix: its reason stays in the line.
    expect(
      describeChoice({
        name: 'wasm',
        source: 'bundled',
        notes: ['tensorflow-gpu: libcudart.so.11.0: cannot open shared object file'],
      }),
    ).toBe(
      'backend: using wasm (bundled); passed over tensorflow-gpu (did not load: libcudart.so.11.0: cannot open shared object file); `distill-gate doctor` says more',
    );
    expect(line.split('\n')).toHaveLength(1);
    expect(describeChoice({ name: 'cpu', source: 'bundled', notes: [] })).toBe('backend: using cpu (bundled)');
  });

  it('doctor shows what Dawn printed once, under its own heading, and the adapter it found', async () => {
    const module = await fakeDawn({ vulkan: null, opengles: LLVMPIPE });
    const importPackage = async (name: string) => (name === 'webgpu' ? { module: {}, path: module } : undefined);
    const text = await doctor({ importPackage, listLibraries: async () => '' });
    expect(text).toMatch(
      /ok\s+webgpu\s+mesa llvmpipe.* via Dawn opengles, software .*a software adapter: auto skips it/,
    );
    expect(text).toMatch(/auto picks: wasm/);
    expect(text).toContain(
      "Dawn (the webgpu package) printed this while looking for an adapter; runs keep it out of their log:\n  Warning: Couldn't load Vulkan",
    );
    expect(text.split("Couldn't load Vulkan")).toHaveLength(2);
  });
});
