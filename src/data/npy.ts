import { open, type FileHandle } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { assertNotLfsPointer } from './lfs.js';

export type NpyArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array;

export interface NpyHeader {
  dtype: string;
  shape: number[];
  /** Byte offset of the first element. */
  dataOffset: number;
  bytesPerElement: number;
}

const DTYPES: Record<string, { bytes: number; make: (b: ArrayBuffer) => NpyArray }> = {
  f4: { bytes: 4, make: (b) => new Float32Array(b) },
  f8: { bytes: 8, make: (b) => new Float64Array(b) },
  i4: { bytes: 4, make: (b) => new Int32Array(b) },
  i8: { bytes: 8, make: (b) => new BigInt64Array(b) },
  u8: { bytes: 8, make: (b) => new BigUint64Array(b) },
  i2: { bytes: 2, make: (b) => new Int16Array(b) },
  u2: { bytes: 2, make: (b) => new Uint16Array(b) },
  i1: { bytes: 1, make: (b) => new Int8Array(b) },
  u1: { bytes: 1, make: (b) => new Uint8Array(b) },
  b1: { bytes: 1, make: (b) => new Uint8Array(b) },
};
const SUPPORTED = 'float32 (<f4), float64 (<f8), int8/16/32/64, uint8/16/64 or bool, little-endian';

/** Parses the header of a .npy file (format versions 1-3), validating everything it can. */
export function parseNpyHeader(head: Buffer, file: string): NpyHeader {
  if (head.length < 10 || head.toString('latin1', 0, 6) !== '\x93NUMPY') {
    assertNotLfsPointer(file, head);
    throw new InputError(file, 'is not a .npy file (wrong magic bytes; expected a file written by numpy.save).');
  }
  const major = head[6];
  const lengthBytes = major === 1 ? 2 : 4;
  if (major < 1 || major > 3) throw new InputError(file, `has .npy format version ${major}, expected 1, 2 or 3.`);
  const headerLength = lengthBytes === 2 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const dataOffset = 8 + lengthBytes + headerLength;
  if (head.length < dataOffset) throw new InputError(file, 'is truncated inside its .npy header.');
  const header = head.toString(major === 3 ? 'utf8' : 'latin1', 8 + lengthBytes, dataOffset);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(file, `has a malformed .npy header: ${JSON.stringify(header.trim().slice(0, 120))}.`);
  }
  if (fortran === 'True') {
    throw new InputError(
      file,
      'is stored in Fortran order; save it in C order (numpy.save(path, numpy.ascontiguousarray(a))).',
    );
  }
  const byteOrder = descr[0];
  const kind = descr.slice(1);
  const dtype = DTYPES[kind];
  if (!dtype || byteOrder === '>' || (byteOrder === '|' && dtype.bytes > 1)) {
    throw new InputError(file, `has dtype "${descr}", which distill-gate does not read; supported: ${SUPPORTED}.`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0))
    throw new InputError(file, `has an invalid shape (${shapeText}).`);
  return { dtype: kind, shape, dataOffset, bytesPerElement: dtype.bytes };
}

export interface NpyData {
  header: NpyHeader;
  data: NpyArray;
}

/** Opens a .npy file and checks its header against its size, reading no data yet. */
export async function openNpy(file: string): Promise<{ handle: FileHandle; header: NpyHeader }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw new InputError(file, `cannot read the data file (${(error as NodeJS.ErrnoException).code ?? error}).`);
  }
  try {
    const { size } = await handle.stat();
    const headBuffer = Buffer.alloc(Math.min(size, 65536 + 12));
    await handle.read(headBuffer, 0, headBuffer.length, 0);
    const header = parseNpyHeader(headBuffer, file);
    const elements = header.shape.reduce((a, b) => a * b, 1);
    const expected = elements * header.bytesPerElement;
    const available = size - header.dataOffset;
    if (available !== expected) {
      throw new InputError(
        file,
        `${available < expected ? 'is truncated' : 'has trailing bytes'}: shape [${header.shape.join(', ')}] of ${header.dtype} needs ${expected} bytes of data, the file holds ${available}.`,
      );
    }
    return { handle, header };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Reads `count` elements starting at element `start`, in the file's dtype. */
export async function readNpyElements(
  handle: FileHandle,
  header: NpyHeader,
  start: number,
  count: number,
): Promise<NpyArray> {
  const body = new ArrayBuffer(count * header.bytesPerElement);
  await handle.read(new Uint8Array(body), 0, body.byteLength, header.dataOffset + start * header.bytesPerElement);
  return DTYPES[header.dtype].make(body);
}

/** Reads a whole .npy file; the element count must match the header's shape exactly. */
export async function readNpy(file: string): Promise<NpyData> {
  const { handle, header } = await openNpy(file);
  try {
    return {
      header,
      data: await readNpyElements(
        handle,
        header,
        0,
        header.shape.reduce((a, b) => a * b, 1),
      ),
    };
  } finally {
    await handle.close();
  }
}

/** Serialises a C-order array as .npy v1 (used by the fixture generator and tests). */
export function encodeNpy(
  data: Float32Array | Int32Array | Float64Array | BigInt64Array | Uint8Array,
  shape: number[],
): Buffer {
  const descr =
    data instanceof Float32Array
      ? '<f4'
      : data instanceof Float64Array
        ? '<f8'
        : data instanceof Int32Array
          ? '<i4'
          : data instanceof BigInt64Array
            ? '<i8'
            : '|u1';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    head,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}
