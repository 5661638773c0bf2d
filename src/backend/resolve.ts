import type { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as bundledTf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { initialiseBundled } from './bundled.js';
import type { BackendName } from '../config/schema.js';
import type { Tf } from './tf.js';
import {
  createGpu,
  describeAdapter,
  initialiseWebGpu,
  searchAdapterApart,
  type AdapterDescription,
  type AdapterSearch,
} from './webgpu.js';

export type { Tf } from './tf.js';
export type ConcreteBackend = Exclude<BackendName, 'auto'>;

export interface ResolvedBackend {
  tf: Tf;
  name: ConcreteBackend;
  /** The backend's name in TF.js's registry, for tf.setBackend: tfjs-node(-gpu) registers "tensorflow". */
  engine: string;
  /** The WebGPU adapter, for the webgpu backend. */
  adapter?: AdapterDescription;
  /** Where the handle came from: a resolved native package path, or "bundled". */
  source: string;
  /** Why earlier candidates were passed over (auto) - shown in the log and the report. */
  notes: string[];
}

const NATIVE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;

/**
 * `auto` tries these in order: tfjs-node-gpu (CUDA), WebGPU on a hardware adapter, the native CPU
 * build, then the bundled backends.
 */
export const AUTO_ORDER: readonly ConcreteBackend[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];

export interface ResolveOptions {
  /** Folders whose node_modules may hold a native package (workspace, config folder). */
  searchFrom?: string[];
  /** Seam for tests: finds and imports a package, or returns undefined when it is not installed. */
  importPackage?: (name: string, searchFrom: string[]) => Promise<{ module: unknown; path: string } | undefined>;
  /** Seam for tests: the WebGPU adapter search kept out of this process (searchAdapterApart). */
  searchAdapter?: (modulePath: string, allowSoftware: boolean) => Promise<AdapterSearch>;
}

export async function resolveBackend(requested: BackendName, options: ResolveOptions = {}): Promise<ResolvedBackend> {
  const notes: string[] = [];
  const candidates = requested === 'auto' ? AUTO_ORDER : [requested];
  for (const name of candidates) {
    try {
      const resolved = await initialise(name, options, requested === name);
      return { ...resolved, engine: resolved.tf.getBackend(), notes };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (requested !== 'auto') throw new InputError(`backend "${name}"`, reason);
      notes.push(`${name}: ${reason}`);
    }
  }
  throw new Error(`no TF.js backend could be initialised: ${notes.join('; ')}`);
}

function searchFolders(options: ResolveOptions): string[] {
  return [...new Set((options.searchFrom ?? [process.cwd()]).map((folder) => path.resolve(folder)))];
}

/**
 * The `webgpu` package (Dawn's bindings, a native addon), resolved at run time like the tfjs-node
 * packages, and the adapter search run in a child process: Dawn prints its warnings from native
 * code, where nothing here can catch them, so Dawn creates nothing in this process until the child
 * found a usable adapter (searchAdapterApart). Throws when the package is not installed.
 */
export async function searchWebGpu(
  options: ResolveOptions,
  allowSoftware: boolean,
): Promise<{ module: unknown; path: string; search: AdapterSearch }> {
  const searchFrom = searchFolders(options);
  const found = await (options.importPackage ?? importFromFolders)('webgpu', searchFrom);
  if (!found)
    throw new Error(
      `the \`webgpu\` package (Dawn) is not installed in ${searchFrom.join(' or ')}. Install it on the runner with \`npm install --no-save webgpu@0.6.2\` (and libvulkan1 with the GPU's Vulkan driver).`,
    );
  return { ...found, search: await (options.searchAdapter ?? searchAdapterApart)(found.path, allowSoftware) };
}

async function initialise(
  name: ConcreteBackend,
  options: ResolveOptions,
  askedByName: boolean,
): Promise<Omit<ResolvedBackend, 'notes' | 'engine'>> {
  const searchFrom = searchFolders(options);
  const importPackage = options.importPackage ?? importFromFolders;
  if (name === 'webgpu') {
    // TF.js's WebGPU backend itself is plain JavaScript and bundled.
    const found = await searchWebGpu(options, askedByName);
    const { search } = found;
    if (!search.adapter || !search.dawnBackend) throw new Error(`no usable WebGPU adapter: ${search.notes.join('; ')}`);
    const dawn = found.module as Parameters<typeof createGpu>[0];
    await initialiseWebGpu(bundledTf, dawn, createGpu(dawn, search.dawnBackend), search.featureLevel);
    return {
      tf: bundledTf,
      name,
      source: `${found.path} (${describeAdapter(search.adapter)})`,
      adapter: search.adapter,
    };
  }
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const packageName = NATIVE_PACKAGES[name];
    const found = await importPackage(packageName, searchFrom);
    if (!found) {
      throw new Error(
        `${packageName} is not installed in ${searchFrom.join(' or ')}. Install it on the runner with ` +
          `\`npm install --no-save ${packageName}@4.22.0\`` +
          (name === 'tensorflow-gpu' ? ' (it needs CUDA 11.2 and cuDNN 8.1; see docs/backends.md, GPU runners).' : '.'),
      );
    }
    const mod = found.module as { default?: Tf } & Tf;
    const tf = mod.default ?? mod;
    if (!(await tf.setBackend('tensorflow')) || tf.getBackend() !== 'tensorflow') {
      throw new Error(`${packageName} loaded from ${found.path} but its "tensorflow" backend did not initialise.`);
    }
    return { tf, name, source: found.path };
  }
  return { tf: await initialiseBundled(name), name, source: 'bundled' };
}

/**
 * Native packages are never bundled: they are looked up at run time in the given folders, so a
 * workflow step can `npm install` them on the GPU runner. Also how an ONNX teacher finds
 * onnxruntime-node (models/onnx-runtime.ts).
 */
export async function importFromFolders(
  name: string,
  folders: string[],
): Promise<{ module: unknown; path: string } | undefined> {
  // webpackIgnore keeps ncc from turning these into bundle-time lookups, which would never see a
  // package installed on the runner after the bundle was built.
  const { createRequire: requireFrom } = (await import(/* webpackIgnore: true */ 'node:module')) as {
    createRequire: typeof createRequire;
  };
  for (const folder of folders) {
    let resolved: string;
    try {
      resolved = requireFrom(path.join(path.resolve(folder), 'noop.js')).resolve(name);
    } catch {
      continue;
    }
    return { module: await import(/* webpackIgnore: true */ pathToFileURL(resolved).href), path: resolved };
  }
  return undefined;
}

/**
 * The run log's one line about the backend: the one chosen and, when auto passed others over, their
 * names with a word of why; the full reasons are in the report's environment (backendNotes) and in
 * `distill-gate doctor`, not repeated in every run's log. A package that is installed but failed
 * to load (tfjs-node-gpu without its CUDA libraries) is a fault to fix, so its reason is kept.
 */
export function describeChoice(backend: Pick<ResolvedBackend, 'name' | 'source' | 'notes'>): string {
  const passed = backend.notes.map((note) => {
    const [name, ...rest] = note.split(': ');
    const reason = rest.join(': ');
    if (/is not installed/.test(reason)) return `${name} (not installed)`;
    if (/^no usable WebGPU adapter/.test(reason))
      return `${name} (${/only a software adapter/.test(reason) ? 'only a software adapter' : 'no usable adapter'})`;
    return `${name} (did not load: ${reason})`;
  });
  return `backend: using ${backend.name} (${backend.source})${passed.length ? `; passed over ${passed.join(', ')}; \`distill-gate doctor\` says more` : ''}`;
}

/** The machine and backend a run measured on: what a later run must match for speed deltas to be gated. */
export function describeEnvironment(backend: ResolvedBackend) {
  const cpus = os.cpus();
  return {
    backend: backend.name,
    backendSource: backend.source,
    tfjsVersion: backend.tf.version['tfjs-core'],
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cpus: cpus.length,
    gpu: backend.adapter
      ? describeAdapter(backend.adapter)
      : backend.name === 'tensorflow-gpu'
        ? 'CUDA device (tfjs-node-gpu)'
        : null,
    backendNotes: backend.notes,
  };
}

/** Runs `work` with `name` as TF.js's current backend, then puts the previous one back. */
export async function onBackend<T>(tf: Tf, name: string, work: () => Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  if (name === previous) return work();
  await tf.setBackend(name);
  try {
    return await work();
  } finally {
    await tf.setBackend(previous);
  }
}
