import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describeAdapter } from './webgpu.js';
import { describeOnnxRuntime } from '../models/onnx-runtime.js';
import { AUTO_ORDER, resolveBackend, type ResolveOptions } from './resolve.js';

/** The CUDA 11.2 / cuDNN 8.1 libraries libtensorflow 2.9 (tfjs-node-gpu 4.22) links against. */
const CUDA_LIBRARIES = ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'];

/**
 * `distill-gate doctor`: tries every backend in `auto` order and says which load, why the others
 * do not, what auto would pick, and whether the CUDA libraries tfjs-node-gpu needs are present;
 * then whether onnxruntime-node (for ONNX teachers) is installed, its version, and whether its
 * CUDA execution provider loads. It changes nothing.
 */
export async function doctor(options: ResolveOptions & { listLibraries?: () => Promise<string> } = {}): Promise<string> {
  const lines = ['distill-gate doctor', `node ${process.version} on ${process.platform}-${process.arch}`, ''];
  let chosen: string | undefined;
  for (const name of AUTO_ORDER) {
    try {
      const backend = await resolveBackend(name, options);
      const software = backend.adapter?.software === true;
      if (!software) chosen ??= name;
      const detail = backend.adapter ? describeAdapter(backend.adapter) : backend.source;
      lines.push(
        `  ok       ${name.padEnd(15)} ${detail} (TF.js ${backend.tf.version['tfjs-core']})${software ? ' - a software adapter: auto skips it, --backend webgpu uses it' : ''}`,
      );
    } catch (error) {
      lines.push(`  missing  ${name.padEnd(15)} ${(error as Error).message.replace(/^backend "[^"]+": /, '')}`);
    }
  }
  lines.push('', `auto picks: ${chosen ?? 'nothing (no backend loads)'}`, '');
  const listed = await (options.listLibraries ?? listSharedLibraries)().catch(() => undefined);
  if (listed === undefined) {
    lines.push('CUDA libraries for tensorflow-gpu: could not run ldconfig -p to look for them.');
  } else {
    lines.push('CUDA libraries for tensorflow-gpu (CUDA 11.2, cuDNN 8.1; see docs/backends.md, GPU runners):');
    for (const library of CUDA_LIBRARIES) lines.push(`  ${listed.includes(library) ? 'found  ' : 'missing'}  ${library}`);
  }
  lines.push('', ...(await describeOnnxRuntime(options.searchFrom ?? [process.cwd()], options.importPackage)));
  return `${lines.join('\n')}\n`;
}

async function listSharedLibraries(): Promise<string> {
  const { stdout } = await promisify(execFile)('ldconfig', ['-p']);
  return stdout;
}
