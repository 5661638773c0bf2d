import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describeAdapter } from './webgpu.js';
import { describeOnnxRuntime } from '../models/onnx-runtime.js';
import { version as tfVersion } from '@tensorflow/tfjs';
import { AUTO_ORDER, resolveBackend, searchWebGpu, type ResolveOptions } from './resolve.js';

/** The CUDA 11.2 / cuDNN 8.1 libraries libtensorflow 2.9 (tfjs-node-gpu 4.22) links against. */
const CUDA_LIBRARIES = ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'];

/**
 * `distill-gate doctor`: tries every backend in `auto` order and says which load, why the others
 * do not, what auto would pick, what Dawn printed while it looked for a WebGPU adapter (caught in a
 * child process, as in a run, and shown here only), and whether the CUDA libraries tfjs-node-gpu needs are present;
 * then whether onnxruntime-node (for ONNX teachers) is installed, its version, and whether its
 * CUDA execution provider loads. It changes nothing.
 */
export async function doctor(
  options: ResolveOptions & { listLibraries?: () => Promise<string> } = {},
): Promise<string> {
  const lines = ['distill-gate doctor', `node ${process.version} on ${process.platform}-${process.arch}`, ''];
  let chosen: string | undefined;
  let dawnLines: string[] = [];
  for (const name of AUTO_ORDER) {
    if (name === 'webgpu') {
      // Searched in a child process, as a run searches: Dawn's own messages are caught there and
      // shown once below, and nothing is loaded here that the other backends would run beside.
      const webgpu = await describeWebGpu(options);
      dawnLines = webgpu.nativeLines;
      if (webgpu.usable) chosen ??= name;
      lines.push(webgpu.line);
      continue;
    }
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
  if (dawnLines.length) {
    lines.push('Dawn (the webgpu package) printed this while looking for an adapter; runs keep it out of their log:');
    lines.push(...dawnLines.map((line) => `  ${line}`), '');
  }
  const listed = await (options.listLibraries ?? listSharedLibraries)().catch(() => undefined);
  if (listed === undefined) {
    lines.push('CUDA libraries for tensorflow-gpu: could not run ldconfig -p to look for them.');
  } else {
    lines.push('CUDA libraries for tensorflow-gpu (CUDA 11.2, cuDNN 8.1; see docs/backends.md, GPU runners):');
    for (const library of CUDA_LIBRARIES)
      lines.push(`  ${listed.includes(library) ? 'found  ' : 'missing'}  ${library}`);
  }
  lines.push('', ...(await describeOnnxRuntime(options.searchFrom ?? [process.cwd()], options.importPackage)));
  return `${lines.join('\n')}\n`;
}

/** doctor's webgpu row: the adapter the search found (a software one too, as `--backend webgpu` would use it), or why none. */
async function describeWebGpu(
  options: ResolveOptions,
): Promise<{ line: string; usable: boolean; nativeLines: string[] }> {
  const label = (status: string) => `  ${status.padEnd(8)} ${'webgpu'.padEnd(15)}`;
  let found: Awaited<ReturnType<typeof searchWebGpu>>;
  try {
    found = await searchWebGpu(options, true);
  } catch (error) {
    return { line: `${label('missing')} ${(error as Error).message}`, usable: false, nativeLines: [] };
  }
  const { adapter, notes, nativeLines } = found.search;
  if (!adapter)
    return { line: `${label('missing')} no usable WebGPU adapter: ${notes.join('; ')}`, usable: false, nativeLines };
  const software = adapter.software ? ' - a software adapter: auto skips it, --backend webgpu uses it' : '';
  return {
    line: `${label('ok')} ${describeAdapter(adapter)} (TF.js ${tfVersion['tfjs-core']})${software}`,
    usable: !adapter.software,
    nativeLines,
  };
}

async function listSharedLibraries(): Promise<string> {
  const { stdout } = await promisify(execFile)('ldconfig', ['-p']);
  return stdout;
}
