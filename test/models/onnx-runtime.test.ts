import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { doctor } from '../../src/backend/doctor.js';
import {
  describeOnnxRuntime,
  findOnnxRuntime,
  openSession,
  type OrtModule,
  type OrtSession,
} from '../../src/models/onnx-runtime.js';
import { REPO, withoutOnnxRuntime } from '../onnx-runtime.js';

/**
 * An onnxruntime-node stand-in whose CUDA provider is bundled and, when `cudaError` is set, fails
 * to load with that message, as the real one does on a runner without CUDA 12 / cuDNN 9. It
 * records the providers each session was asked for.
 */
function fakeOrt(cudaError?: string): {
  importPackage: (name: string, folders: string[]) => Promise<{ module: unknown; path: string }>;
  asked: string[][];
} {
  const asked: string[][] = [];
  const session: OrtSession = { inputNames: ['x'], outputNames: ['y'], run: async () => ({}), release: async () => {} };
  const ort: OrtModule = {
    InferenceSession: {
      create: async (_model, options) => {
        const providers = (options?.executionProviders as string[]) ?? [];
        asked.push(providers);
        if (cudaError && providers.includes('cuda')) throw new Error(cudaError);
        return session;
      },
    },
    Tensor: class {} as unknown as OrtModule['Tensor'],
    env: { versions: { node: '9.9.9' } },
    listSupportedBackends: () => [
      { name: 'cpu', bundled: true },
      { name: 'cuda', bundled: true },
    ],
  };
  return {
    importPackage: async () => ({
      module: { default: ort },
      path: '/runner/node_modules/onnxruntime-node/dist/index.js',
    }),
    asked,
  };
}

const noPackage = async () => undefined;

describe('the execution provider', () => {
  it('is CUDA where its provider is installed and loads, on every core of the CPU otherwise, and says why', async () => {
    const loads = fakeOrt();
    const runtime = (await findOnnxRuntime(['/runner'], loads.importPackage))!;
    expect(runtime).toMatchObject({ version: '9.9.9', cudaInstalled: true });
    const onGpu = await openSession(runtime, new Uint8Array(), 4);
    expect(onGpu.runtime).toMatchObject({ provider: 'cuda', label: 'onnxruntime-node 9.9.9 (cuda)' });
    expect(loads.asked).toEqual([['cuda', 'cpu']]);

    const failing = fakeOrt('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library');
    const onCpu = await openSession((await findOnnxRuntime(['/runner'], failing.importPackage))!, new Uint8Array(), 4);
    expect(onCpu.runtime).toMatchObject({
      provider: 'cpu',
      threads: 4,
      label: 'onnxruntime-node 9.9.9 (cpu, 4 threads)',
    });
    expect(onCpu.notes).toEqual([
      'the CUDA execution provider did not load (OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library); running on cpu',
    ]);
    expect(failing.asked).toEqual([['cuda', 'cpu'], ['cpu']]);
  });

  it('does not hide a model onnxruntime cannot read behind a CPU retry', async () => {
    const broken = fakeOrt('Failed to load model because protobuf parsing failed.');
    await expect(
      openSession((await findOnnxRuntime(['/runner'], broken.importPackage))!, new Uint8Array()),
    ).rejects.toThrow(/protobuf parsing failed/);
  });
});

describe('doctor on onnxruntime-node', () => {
  it('gives both install commands when it is missing', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'no-ort-'));
    const lines = (await describeOnnxRuntime([empty])).join('\n');
    expect(lines).toMatch(new RegExp(`missing\\s+onnxruntime-node\\s+not installed in ${empty}`));
    expect(lines).toContain('ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node@1.30.0   (CPU)');
    expect(lines).toContain(
      'npm install --no-save onnxruntime-node@1.30.0   (GPU runners: also downloads the CUDA provider)',
    );
    // The whole doctor report carries the section.
    expect(await doctor({ importPackage: noPackage, listLibraries: async () => '' })).toMatch(
      /ONNX teachers \(onnxruntime-node, an optional peer\):\n\s+missing\s+onnxruntime-node/,
    );
  });

  it('reports whether the CUDA provider loads, by opening a session on it', async () => {
    expect((await describeOnnxRuntime(['/runner'], fakeOrt().importPackage)).join('\n')).toMatch(
      /ok\s+cuda provider\s+loads: ONNX teachers run on the GPU/,
    );
    const failing = (
      await describeOnnxRuntime(['/runner'], fakeOrt('Failed to load shared library libcudnn.so.9').importPackage)
    ).join('\n');
    expect(failing).toMatch(
      /ok\s+onnxruntime-node\s+9\.9\.9 \(\/runner\/node_modules\/onnxruntime-node\/dist\/index\.js\)/,
    );
    expect(failing).toMatch(
      /missing\s+cuda provider\s+installed but the CUDA execution provider did not load \(Failed to load shared library libcudnn\.so\.9\); running on cpu: it needs CUDA 12 and cuDNN 9/,
    );
  });

  it.skipIf(withoutOnnxRuntime)(
    'finds the installed package and its version, without a CUDA provider here',
    async () => {
      const lines = (await describeOnnxRuntime([REPO])).join('\n');
      expect(lines).toMatch(
        /ok\s+onnxruntime-node\s+\d+\.\d+\.\d+ \(.*node_modules\/onnxruntime-node\/dist\/index\.js\)/,
      );
      expect(lines).toMatch(/missing\s+cuda provider\s+not installed/);
    },
  );
});
