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
  requestAdapter(options?: Record<string, unknown>): Promise<AdapterLike | null>;
}
interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
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

/**
 * Finds an adapter through Dawn: a hardware one first on each Dawn backend; a software one
 * (llvmpipe, SwiftShader) only when `allowSoftware` (the backend was asked for by name).
 */
export async function findAdapter(dawn: DawnModule, allowSoftware: boolean): Promise<AdapterProbe & { gpu?: GpuLike; featureLevel?: string }> {
  // Dawn's GL backend on a machine without a display needs a surfaceless EGL platform.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const notes: string[] = [];
  for (const backend of DAWN_BACKENDS) {
    let gpu: GpuLike;
    let adapter: AdapterLike | null;
    try {
      gpu = dawn.create(backend.flags);
      adapter = await gpu.requestAdapter(backend.featureLevel ? { featureLevel: backend.featureLevel } : {});
    } catch (error) {
      notes.push(`${backend.name}: ${(error as Error).message}`);
      continue;
    }
    if (!adapter) {
      notes.push(`${backend.name}: no adapter${backend.name === 'vulkan' ? " (libvulkan1 and a Vulkan driver, e.g. NVIDIA's ICD, are needed)" : ''}`);
      continue;
    }
    const info = adapter.info ?? {};
    const description: AdapterDescription = {
      dawnBackend: backend.name,
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
      software:
        Boolean(adapter.isFallbackAdapter ?? info.isFallbackAdapter) || SOFTWARE.test(`${info.vendor} ${info.device} ${info.description} ${info.architecture}`),
    };
    if (description.software && !allowSoftware) {
      notes.push(`${backend.name}: only a software adapter (${describeAdapter(description)}), which auto never picks; ask for --backend webgpu to use it`);
      continue;
    }
    return { adapter: description, notes, gpu, featureLevel: backend.featureLevel };
  }
  return { notes };
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
export async function initialiseWebGpu(tf: Tf, dawn: DawnModule, gpu: GpuLike, featureLevel: string | undefined): Promise<void> {
  Object.assign(globalThis, dawn.globals);
  const pinned = new Proxy(gpu as object, {
    get(target, key) {
      if (key === 'requestAdapter') return (options?: Record<string, unknown>) => gpu.requestAdapter({ ...options, ...(featureLevel ? { featureLevel } : {}) });
      const value = (target as Record<string | symbol, unknown>)[key];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  Object.defineProperty(globalThis, 'navigator', { value: { ...(globalThis.navigator ?? {}), gpu: pinned }, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu')) || tf.getBackend() !== 'webgpu') {
    throw new Error("TF.js's WebGPU backend did not initialise on the adapter Dawn found.");
  }
}
