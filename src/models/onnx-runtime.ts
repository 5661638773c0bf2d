import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importFromFolders, type ResolveOptions } from '../backend/resolve.js';

// onnxruntime-node, an optional peer like the native TF.js backends: found at run time in the
// workspace (or the config's folder), never bundled, never needed by a run whose teacher is a
// TF.js model. Its types are written out here, as much of them as distill-gate uses, so that
// neither the build nor the type check needs the package installed.

/** The onnxruntime-node release distill-gate is tested with; the install commands pin it. */
export const ONNXRUNTIME_NODE_VERSION = '1.30.0';

/**
 * onnxruntime-node's install script downloads the CUDA execution provider from NuGet on Linux x64;
 * `ONNXRUNTIME_NODE_INSTALL=skip` keeps the CPU library the package ships and downloads nothing.
 */
export const INSTALL_ONNXRUNTIME_CPU = `ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node@${ONNXRUNTIME_NODE_VERSION}`;
export const INSTALL_ONNXRUNTIME_CUDA = `npm install --no-save onnxruntime-node@${ONNXRUNTIME_NODE_VERSION}`;

export type OrtElementType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: ArrayLike<number | bigint | boolean | string>;
}

export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

export interface OrtModule {
  InferenceSession: { create(model: Uint8Array | string, options?: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: OrtElementType, data: ArrayBufferView | readonly boolean[], dims: readonly number[]) => OrtTensor;
  env: { versions?: Record<string, string> };
  /** Execution providers the binding was built with; `bundled: false` ones are downloaded by the install script. */
  listSupportedBackends?: () => Array<{ name: string; bundled: boolean }>;
}

export interface OnnxRuntime {
  ort: OrtModule;
  version: string;
  /** The resolved entry point, for the log and doctor. */
  path: string;
  /** The CUDA execution provider's library is beside the binding (the install script downloaded it). */
  cudaInstalled: boolean;
}

/** Where and how an ONNX session runs: the report's `teacher.runtime`. */
export interface TeacherRuntime {
  name: 'onnxruntime-node';
  version: string;
  provider: 'cpu' | 'cuda';
  /** onnxruntime's intra-op threads (CPU provider). */
  threads: number;
  /** "onnxruntime-node 1.30.0 (cpu, 2 threads)": what the report and log print. */
  label: string;
}

/** onnxruntime-node from the first of `searchFrom` that has it, or undefined. */
export async function findOnnxRuntime(
  searchFrom: string[],
  importPackage: NonNullable<ResolveOptions['importPackage']> = importFromFolders,
): Promise<OnnxRuntime | undefined> {
  const found = await importPackage('onnxruntime-node', searchFrom);
  if (!found) return undefined;
  const namespace = found.module as { default?: OrtModule } & Partial<OrtModule>;
  const ort = (namespace.default ?? namespace) as OrtModule;
  const version = ort.env?.versions?.node ?? ort.env?.versions?.common ?? 'unknown';
  // The binding sits in bin/napi-v6/<platform>/<arch>/ of the package, beside dist/ where the entry point is.
  const binFolder = path.join(path.dirname(path.dirname(found.path)), 'bin', 'napi-v6', process.platform, process.arch);
  const cuda = ort.listSupportedBackends?.().find((b) => b.name === 'cuda');
  const cudaLibrary =
    process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  const cudaInstalled = cuda !== undefined && (cuda.bundled || existsSync(path.join(binFolder, cudaLibrary)));
  return { ort, version, path: found.path, cudaInstalled };
}

/** The message for a run that needs onnxruntime-node and does not find it. */
export function missingRuntimeMessage(searchFrom: string[]): string {
  return (
    `is an ONNX model, which runs in onnxruntime-node; it is not installed in ${searchFrom.join(' or ')}. ` +
    `Install it in the workspace: \`${INSTALL_ONNXRUNTIME_CPU}\` (CPU), or on a GPU runner \`${INSTALL_ONNXRUNTIME_CUDA}\` ` +
    '(its install script downloads the CUDA execution provider from NuGet).'
  );
}

export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export interface OpenedSession {
  session: OrtSession;
  runtime: TeacherRuntime;
  /** Why the CUDA provider was not used, when it was not. */
  notes: string[];
}

/**
 * An inference session on the CUDA execution provider where it is installed and loads (CUDA 12
 * and cuDNN 9 on the library path), else on the CPU provider with one intra-op thread per core.
 * `model` is the file's bytes, or its path when its weights are in external data files that
 * onnxruntime finds beside it. Errors are onnxruntime's (the caller names the file).
 */
export async function openSession(
  runtime: OnnxRuntime,
  model: Uint8Array | string,
  threads = availableCores(),
): Promise<OpenedSession> {
  const options = {
    intraOpNumThreads: threads,
    graphOptimizationLevel: 'all',
    // Warnings (an initializer listed among the inputs, say) go to stderr otherwise.
    logSeverityLevel: 3,
  };
  const notes: string[] = [];
  const label = (provider: string) =>
    `onnxruntime-node ${runtime.version} (${provider === 'cpu' ? `cpu, ${threads} thread${threads === 1 ? '' : 's'}` : provider})`;
  if (runtime.cudaInstalled) {
    try {
      const session = await runtime.ort.InferenceSession.create(model, {
        ...options,
        executionProviders: ['cuda', 'cpu'],
      });
      return {
        session,
        runtime: {
          name: 'onnxruntime-node',
          version: runtime.version,
          provider: 'cuda',
          threads,
          label: label('cuda'),
        },
        notes,
      };
    } catch (error) {
      const message = firstLine(error);
      // A model onnxruntime cannot read fails the same way on every provider: say so once.
      if (!/provider|shared library|cuda|cudnn|cublas/i.test(message)) throw error;
      notes.push(`the CUDA execution provider did not load (${message}); running on cpu`);
    }
  } else {
    notes.push(
      `no CUDA execution provider installed (onnxruntime-node ${runtime.version} installed with ONNXRUNTIME_NODE_INSTALL=skip, or not on Linux x64); running on cpu`,
    );
  }
  const session = await runtime.ort.InferenceSession.create(model, { ...options, executionProviders: ['cpu'] });
  return {
    session,
    runtime: { name: 'onnxruntime-node', version: runtime.version, provider: 'cpu', threads, label: label('cpu') },
    notes,
  };
}

/**
 * A one-node ONNX model (y = Identity(x), x a float[1]) for `doctor` to try the CUDA provider on:
 * 90 bytes as src/models/onnx-writer.ts writes them (a test checks that the two agree).
 */
export const PROBE_MODEL_BASE64 =
  'CAcSE2Rpc3RpbGwtZ2F0ZSBkb2N0b3I6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN';

/** doctor's lines on onnxruntime-node: present or not (with the install commands), version, and whether the CUDA provider loads. */
export async function describeOnnxRuntime(
  searchFrom: string[],
  importPackage?: ResolveOptions['importPackage'],
): Promise<string[]> {
  const lines = ['ONNX teachers (onnxruntime-node, an optional peer):'];
  let runtime: OnnxRuntime | undefined;
  try {
    runtime = await findOnnxRuntime(searchFrom, importPackage);
  } catch (error) {
    return [...lines, `  missing  onnxruntime-node   found but it does not load: ${firstLine(error)}`];
  }
  if (!runtime) {
    return [
      ...lines,
      `  missing  onnxruntime-node   not installed in ${searchFrom.join(' or ')}; ONNX teachers need it:`,
      `           ${INSTALL_ONNXRUNTIME_CPU}   (CPU)`,
      `           ${INSTALL_ONNXRUNTIME_CUDA}   (GPU runners: also downloads the CUDA provider)`,
    ];
  }
  lines.push(`  ok       onnxruntime-node   ${runtime.version} (${runtime.path})`);
  if (!runtime.cudaInstalled) {
    lines.push(
      `  missing  cuda provider      not installed (installed with ONNXRUNTIME_NODE_INSTALL=skip, or not Linux x64): ONNX teachers run on cpu`,
    );
    return lines;
  }
  const probe = Uint8Array.from(Buffer.from(PROBE_MODEL_BASE64, 'base64'));
  try {
    const { session, runtime: ran, notes } = await openSession(runtime, probe, 1);
    await session.release();
    lines.push(
      ran.provider === 'cuda'
        ? '  ok       cuda provider      loads: ONNX teachers run on the GPU'
        : `  missing  cuda provider      installed but ${notes.join('; ')}: it needs CUDA 12 and cuDNN 9 on the library path`,
    );
  } catch (error) {
    lines.push(`  missing  cuda provider      the probe model did not load: ${firstLine(error)}`);
  }
  return lines;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}
