import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import { NET_KD_RELAXED_WASM } from './kernel/net-kd-relaxed-wasm.js';
import { NET_KD_WASM } from './kernel/net-kd-wasm.js';

/**
 * The two builds of the training kernel (scripts/build-kernel.mjs), from the same C source:
 * - 'relaxed-simd': its multiply-adds are f32x4.relaxed_madd, which the engine runs as one fused
 *   multiply-add where the CPU has one (x86-64 with FMA3, arm64), else as a multiply and an add;
 * - 'simd128': a multiply and an add, each rounded, everywhere.
 * The two may differ in the last bits of the weights they train; each is reproducible on its own
 * (on one kind of CPU for relaxed-simd).
 */
export const KERNEL_MODULES = ['relaxed-simd', 'simd128'] as const;
export type KernelModuleName = (typeof KERNEL_MODULES)[number];

/** The environment variable that picks the module: auto (the default), relaxed-simd or simd128. */
export const KERNEL_VARIABLE = 'DISTILL_GATE_KERNEL';

const BASE64: Record<KernelModuleName, string> = { 'relaxed-simd': NET_KD_RELAXED_WASM, simd128: NET_KD_WASM };
const bytes = new Map<KernelModuleName, Uint8Array<ArrayBuffer>>();
const compiled = new Map<KernelModuleName, WebAssembly.Module>();

/** A module's bytes, decoded once. */
export function kernelBytes(name: KernelModuleName): Uint8Array<ArrayBuffer> {
  let decoded = bytes.get(name);
  if (!decoded) bytes.set(name, (decoded = new Uint8Array(Buffer.from(BASE64[name], 'base64'))));
  return decoded;
}

/** A module's build, for keys: the first 12 hex digits of its bytes' SHA-256. */
export function kernelBuild(name: KernelModuleName): string {
  return createHash('sha256').update(kernelBytes(name)).digest('hex').slice(0, 12);
}

/** A module compiled once per process. */
export function compiledKernel(name: KernelModuleName): WebAssembly.Module {
  let module = compiled.get(name);
  if (!module) compiled.set(name, (module = new WebAssembly.Module(kernelBytes(name))));
  return module;
}

/**
 * Which module trains: relaxed-simd where this engine validates it (Node 22 and later; Node 20
 * only with --experimental-wasm-relaxed-simd), else simd128. `setting` (DISTILL_GATE_KERNEL)
 * forces one: simd128 to reproduce a Node 20 run's results on any engine; relaxed-simd fails where
 * the engine lacks it rather than fall back.
 */
export function chooseKernelModule(
  setting: string | undefined = process.env[KERNEL_VARIABLE],
  validate: (bytes: Uint8Array<ArrayBuffer>) => boolean = (b) => WebAssembly.validate(b),
): KernelModuleName {
  const wanted = setting?.trim().toLowerCase() || 'auto';
  if (wanted === 'simd128') return 'simd128';
  if (wanted !== 'auto' && wanted !== 'relaxed-simd') {
    throw new InputError(
      KERNEL_VARIABLE,
      `${JSON.stringify(String(setting).slice(0, 40))} is not a kernel module; set it to auto (the default), relaxed-simd or simd128.`,
    );
  }
  if (validate(kernelBytes('relaxed-simd'))) return 'relaxed-simd';
  if (wanted === 'relaxed-simd') {
    throw new InputError(
      KERNEL_VARIABLE,
      `relaxed-simd was asked for, but this engine (Node ${process.versions.node}) does not validate WebAssembly relaxed SIMD: ` +
        'run Node 22 or later, or Node 20 with --experimental-wasm-relaxed-simd, or set it to auto or simd128.',
    );
  }
  return 'simd128';
}

/**
 * The smallest memory, in pages, a module's imported memory may have (its data and stack: the
 * heap base lies within it), read from its import section: the host creates the shared memory
 * before it can instantiate the module and ask.
 */
export function importedMemoryPages(bytes: Uint8Array): number {
  let at = 8; // past the magic number and the version
  const leb = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  const limits = () => {
    const flags = bytes[at++];
    const minimum = leb();
    if (flags & 1) leb();
    return minimum;
  };
  while (at < bytes.length) {
    const id = bytes[at++];
    const length = leb();
    if (id !== 2) {
      at += length;
      continue;
    }
    for (let count = leb(); count > 0; count--) {
      for (const _name of ['module', 'field']) {
        const length = leb(); // (at += leb() would add to the offset before the length)
        at += length;
      }
      const kind = bytes[at++];
      if (kind === 2) return limits(); // memory
      if (kind === 0) {
        leb(); // function: its type
      } else if (kind === 1) {
        at++; // table: its element type, then its limits
        limits();
      } else {
        at += 2; // global: its type, its mutability
      }
    }
    break;
  }
  throw new Error('the kernel module imports no memory');
}
