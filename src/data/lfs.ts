import { open } from 'node:fs/promises';
import { InputError } from '../errors.js';

/**
 * A Git LFS pointer: what a clone without `git lfs pull` (or actions/checkout without `lfs: true`)
 * holds in place of a tracked file. It starts with this line (the spec's older URL too), then
 * `oid sha256:...` and `size <bytes>`: about 130 bytes where a weight shard, a .npy, a CSV or an
 * .onnx file was meant, which every reader would otherwise report as truncated or malformed.
 */
const POINTER_VERSIONS = ['version https://git-lfs.github.com/spec/v1', 'version https://hawser.github.com/spec/v1'];
const LONGEST = Math.max(...POINTER_VERSIONS.map((v) => v.length));

/** Whether the first bytes of a file are an LFS pointer's. */
export function isLfsPointer(head: Uint8Array | string): boolean {
  const text =
    typeof head === 'string'
      ? head.slice(0, LONGEST)
      : Buffer.from(head.buffer, head.byteOffset, Math.min(head.length, LONGEST)).toString('latin1');
  return POINTER_VERSIONS.some((version) => text === version);
}

/** The error every reader gives for a pointer in place of `file`, with the size of the file it points to. */
export function lfsPointerError(file: string, pointer: Uint8Array | string): InputError {
  const text =
    typeof pointer === 'string'
      ? pointer
      : Buffer.from(pointer.buffer, pointer.byteOffset, Math.min(pointer.length, 1024)).toString('latin1');
  const size = Number(/^size (\d+)\s*$/m.exec(text)?.[1]);
  const of = Number.isSafeInteger(size) ? ` (to a file of ${size} bytes)` : '';
  return new InputError(
    file,
    `is a Git LFS pointer${of}, not the file: run \`git lfs pull\` (or actions/checkout with \`lfs: true\`).`,
  );
}

/** Throws lfsPointerError when `bytes` (a file's contents, or its first bytes) are an LFS pointer. */
export function assertNotLfsPointer(file: string, bytes: Uint8Array | string): void {
  if (isLfsPointer(bytes)) throw lfsPointerError(file, bytes);
}

/** The first `bytes` bytes of a file, or undefined when it cannot be read (its reader then says why). */
export async function readFileHead(file: string, bytes: number): Promise<Buffer | undefined> {
  try {
    const handle = await open(file, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(bytes), 0, bytes, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * The same check for a reader that streams its file: reads the first bytes. A file that cannot be
 * read passes, for the reader to report in its own words.
 */
export async function assertFileNotLfsPointer(file: string): Promise<void> {
  const head = await readFileHead(file, 1024);
  if (head) assertNotLfsPointer(file, head);
}
