import { AUTO_ORDER, resolveBackend, type ResolveOptions } from './resolve.js';

/**
 * `distill-gate doctor`: tries every backend in `auto` order and says which load, why the others
 * do not, and what to install. It changes nothing.
 */
export async function doctor(options: ResolveOptions = {}): Promise<string> {
  const lines = ['distill-gate doctor', `node ${process.version} on ${process.platform}-${process.arch}`, ''];
  let chosen: string | undefined;
  for (const name of AUTO_ORDER) {
    try {
      const backend = await resolveBackend(name, options);
      chosen ??= name;
      lines.push(`  ok       ${name.padEnd(15)} ${backend.source} (TF.js ${backend.tf.version['tfjs-core']})`);
    } catch (error) {
      lines.push(`  missing  ${name.padEnd(15)} ${(error as Error).message.replace(/^backend "[^"]+": /, '')}`);
    }
  }
  lines.push('', `auto picks: ${chosen ?? 'nothing (no backend loads)'}`);
  lines.push('tensorflow-gpu needs CUDA 11.2 and cuDNN 8.1 on the library path (libcudart.so.11.0, libcudnn.so.8); see the README\'s GPU runner section.');
  return `${lines.join('\n')}\n`;
}
