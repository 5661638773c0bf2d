import { execFile } from 'node:child_process';
import type { Tf } from './tf.js';

/** What Dawn reports of the adapter a run used; it goes into the report's environment. */
export interface AdapterDescription {
  dawnBackend: 'vulkan' | 'opengles' | 'default';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  software: boolean;
}

interface DawnModule {
  create: (flags: string[]) => GpuLike;
  globals: Record<string, unknown>;
}
interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<unknown>;
}

/** Dawn's backends to try, in order; OpenGL ES needs the compatibility feature level. */
const DAWN_BACKENDS: Array<{ name: AdapterDescription['dawnBackend']; flags: string[]; featureLevel?: string }> = [
  { name: 'vulkan', flags: ['backend=vulkan'] },
  { name: 'opengles', flags: ['backend=opengles'], featureLevel: 'compatibility' },
];

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|softpipe/i;

export interface AdapterProbe {
  adapter?: AdapterDescription;
  /** Why each Dawn backend gave no usable adapter. */
  notes: string[];
}

/** Where an adapter search found its adapter: the Dawn backend to create, and its feature level. */
export interface AdapterSearch extends AdapterProbe {
  dawnBackend?: AdapterDescription['dawnBackend'];
  featureLevel?: string;
  /**
   * What Dawn itself printed on stderr while searching ("Couldn't load Vulkan ...", limits it
   * reduced), one entry a line: caught in the child process, shown by `distill-gate doctor` only.
   */
  nativeLines: string[];
}

/** What the child process reports of one Dawn backend: an error, no adapter (null), or the adapter's info. */
interface ChildResult {
  name: AdapterDescription['dawnBackend'];
  error?: string;
  adapter?: {
    vendor?: string;
    architecture?: string;
    device?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  } | null;
  deviceError?: string;
}

/** A Dawn adapter as distill-gate describes it, software or not. */
function describeFound(
  name: AdapterDescription['dawnBackend'],
  info: NonNullable<ChildResult['adapter']>,
): AdapterDescription {
  return {
    dawnBackend: name,
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    software:
      Boolean(info.isFallbackAdapter) ||
      SOFTWARE.test(`${info.vendor} ${info.device} ${info.description} ${info.architecture}`),
  };
}

function noAdapterNote(name: AdapterDescription['dawnBackend']): string {
  return `${name}: no adapter${name === 'vulkan' ? " (libvulkan1 and a Vulkan driver, e.g. NVIDIA's ICD, are needed)" : ''}`;
}

function softwareNote(description: AdapterDescription): string {
  return `${description.dawnBackend}: only a software adapter (${describeAdapter(description)}), which auto never picks; ask for --backend webgpu to use it`;
}

/**
 * Dawn's GPU object on the Dawn backend where searchAdapterApart found the adapter: the other
 * backends, and what Dawn prints when they fail to load, are never touched in this process. TF.js
 * asks it for the adapter (initialiseWebGpu).
 */
export function createGpu(dawn: DawnModule, dawnBackend: AdapterDescription['dawnBackend']): GpuLike {
  // Dawn's GL backend on a machine without a display needs a surfaceless EGL platform.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const backend = DAWN_BACKENDS.find((b) => b.name === dawnBackend);
  return dawn.create(backend?.flags ?? []);
}

/** The child's one line of stdout that carries its JSON answer (the module may print too). */
const CHILD_MARK = '@@distill-gate-adapter-search ';
const CHILD_SCRIPT = `
const { pathToFileURL } = await import('node:url');
const [modulePath, spec] = process.argv.slice(1);
const done = (result) => { process.stdout.write('\\n${CHILD_MARK}' + JSON.stringify(result) + '\\n', () => process.exit(0)); };
const message = (error) => (error && error.message) || String(error);
let dawn;
try { dawn = await import(pathToFileURL(modulePath).href); } catch (error) { done({ error: message(error) }); }
if (dawn) {
  const results = [];
  for (const backend of JSON.parse(spec)) {
    try {
      const gpu = dawn.create(backend.flags);
      const adapter = await gpu.requestAdapter(backend.featureLevel ? { featureLevel: backend.featureLevel } : {});
      if (!adapter) { results.push({ name: backend.name, adapter: null }); continue; }
      const info = adapter.info || {};
      const result = { name: backend.name, adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
        isFallbackAdapter: Boolean(adapter.isFallbackAdapter ?? info.isFallbackAdapter) } };
      try { const device = await adapter.requestDevice(); device.destroy(); } catch (error) { result.deviceError = message(error); }
      results.push(result);
    } catch (error) { results.push({ name: backend.name, error: message(error) }); }
  }
  done({ results });
}
`;

/**
 * The adapter search, run in a child process (`node -e`): Dawn writes its warnings straight to
 * file descriptor 2 from native code ("Couldn't load Vulkan: libvulkan.so.1 ..." with a path of
 * the machine that built it, limits it "artificially reduced"), which nothing in this process can
 * catch. The child tries every Dawn backend, asks each adapter for a device, prints one marked
 * JSON line and exits; its stderr is kept apart. Dawn is loaded here only when the child found a
 * usable adapter, and then only on that adapter's Dawn backend. A child that crashes or hangs
 * costs the run the webgpu backend, not the run.
 */
export async function searchAdapterApart(
  modulePath: string,
  allowSoftware: boolean,
  options: { timeoutMs?: number } = {},
): Promise<AdapterSearch> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const { stdout, stderr, failure } = await new Promise<{ stdout: string; stderr: string; failure?: string }>(
    (resolve) => {
      execFile(
        process.execPath,
        ['--input-type=module', '-e', CHILD_SCRIPT, modulePath, JSON.stringify(DAWN_BACKENDS)],
        {
          timeout: timeoutMs,
          maxBuffer: 16 * 2 ** 20,
          // Dawn's GL backend on a machine without a display needs a surfaceless EGL platform.
          env: { ...process.env, EGL_PLATFORM: process.env.EGL_PLATFORM ?? 'surfaceless' },
        },
        (error, out, err) => {
          const failure = !error
            ? undefined
            : error.killed
              ? `the adapter search did not end within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}`
              : `the adapter search ended with ${error.signal ? `signal ${error.signal}` : `exit code ${String(error.code)}`}`;
          resolve({ stdout: String(out), stderr: String(err), failure });
        },
      );
    },
  );
  const nativeLines = stderr.split(/\r?\n/).filter((line) => line.trim() !== '');
  const marked = stdout
    .split('\n')
    .reverse()
    .find((line) => line.startsWith(CHILD_MARK));
  if (!marked) {
    const last = nativeLines.at(-1);
    return {
      notes: [`${failure ?? 'the adapter search in a child process said nothing'}${last ? ` (${last.trim()})` : ''}`],
      nativeLines,
    };
  }
  const report = JSON.parse(marked.slice(CHILD_MARK.length)) as { error?: string; results?: ChildResult[] };
  if (report.error !== undefined) return { notes: [`Dawn did not load: ${report.error}`], nativeLines };
  const notes: string[] = [];
  for (const result of report.results ?? []) {
    if (result.error !== undefined) {
      notes.push(`${result.name}: ${result.error}`);
      continue;
    }
    if (!result.adapter) {
      notes.push(noAdapterNote(result.name));
      continue;
    }
    const description = describeFound(result.name, result.adapter);
    if (description.software && !allowSoftware) {
      notes.push(softwareNote(description));
      continue;
    }
    if (result.deviceError !== undefined) {
      notes.push(`${result.name}: ${describeAdapter(description)} gave no device (${result.deviceError})`);
      continue;
    }
    const featureLevel = DAWN_BACKENDS.find((b) => b.name === result.name)?.featureLevel;
    return { adapter: description, dawnBackend: result.name, featureLevel, notes, nativeLines };
  }
  return { notes, nativeLines };
}

export function describeAdapter(adapter: AdapterDescription): string {
  const name = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].filter(Boolean).join(' ');
  return `${name || 'unnamed adapter'} via Dawn ${adapter.dawnBackend}${adapter.software ? ', software' : ''}`;
}

/**
 * Installs the adapter's GPU as `navigator.gpu` and then loads TF.js's WebGPU backend, which
 * reads `navigator.gpu` when it registers (so it is imported dynamically, after this). The
 * adapter request is pinned to the feature level that found the adapter.
 */
export async function initialiseWebGpu(
  tf: Tf,
  dawn: DawnModule,
  gpu: GpuLike,
  featureLevel: string | undefined,
): Promise<void> {
  Object.assign(globalThis, dawn.globals);
  const pinned = new Proxy<object>(gpu, {
    get(target, key) {
      if (key === 'requestAdapter')
        return (options?: Record<string, unknown>) =>
          gpu.requestAdapter({ ...options, ...(featureLevel ? { featureLevel } : {}) });
      const value = (target as Record<string | symbol, unknown>)[key];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  Object.defineProperty(globalThis, 'navigator', {
    value: { ...(globalThis.navigator ?? {}), gpu: pinned },
    configurable: true,
    writable: true,
  });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu')) || tf.getBackend() !== 'webgpu') {
    throw new Error("TF.js's WebGPU backend did not initialise on the adapter Dawn found.");
  }
}
