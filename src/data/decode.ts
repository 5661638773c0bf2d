import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { InputError } from '../errors.js';
import { assertNotLfsPointer } from './lfs.js';

/** One decoded image: 8-bit pixels, row-major [height, width, channels], in the file's own channels. */
export interface DecodedImage {
  width: number;
  height: number;
  /** 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA), as the file stores it. */
  channels: number;
  pixels: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];
const startsWith = (bytes: Uint8Array, magic: number[]) => magic.every((b, i) => bytes[i] === b);

/**
 * Decodes a PNG or a JPEG (told apart by their first bytes, not the file's extension) with the
 * pure-JavaScript decoders pngjs and jpeg-js: the same pixels on every runner, and nothing
 * native in the action's bundle. A file that fails names itself.
 */
export function decodeImage(file: string, bytes: Uint8Array): DecodedImage {
  assertNotLfsPointer(file, bytes);
  try {
    if (startsWith(bytes, PNG_MAGIC)) return decodePng(bytes);
    if (startsWith(bytes, JPEG_MAGIC)) return decodeJpeg(bytes);
  } catch (error) {
    throw new InputError(
      file,
      `cannot be decoded (${(error as Error).message}); re-save it as PNG or JPEG, or remove it from the folder.`,
    );
  }
  throw new InputError(
    file,
    'is neither a PNG nor a JPEG (by its first bytes); distill-gate reads those two image formats.',
  );
}

function decodePng(bytes: Uint8Array): DecodedImage {
  // pngjs gives RGBA, 16-bit samples scaled to 8; the file's own channels come from its header.
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const meta = png as unknown as { color: boolean; alpha: boolean };
  const channels = (meta.color ? 3 : 1) + (meta.alpha ? 1 : 0);
  return {
    width: png.width,
    height: png.height,
    channels,
    pixels: fromRgba(png.data, png.width * png.height, channels),
  };
}

function decodeJpeg(bytes: Uint8Array): DecodedImage {
  const image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false });
  // jpeg-js gives RGB (grey repeated, CMYK converted); a one-component JPEG is grey.
  const channels = jpegComponents(bytes) === 1 ? 1 : 3;
  const count = image.width * image.height;
  if (channels === 3) return { width: image.width, height: image.height, channels, pixels: image.data };
  const grey = new Uint8Array(count);
  for (let i = 0; i < count; i++) grey[i] = image.data[i * 3];
  return { width: image.width, height: image.height, channels, pixels: grey };
}

/** RGBA (as pngjs gives it) to the file's channels: grey is the red sample, alpha the fourth. */
function fromRgba(rgba: Uint8Array, count: number, channels: number): Uint8Array {
  if (channels === 4) return new Uint8Array(rgba.buffer, rgba.byteOffset, count * 4);
  const out = new Uint8Array(count * channels);
  const picks = channels === 3 ? [0, 1, 2] : channels === 2 ? [0, 3] : [0];
  for (let i = 0; i < count; i++) for (let c = 0; c < channels; c++) out[i * channels + c] = rgba[i * 4 + picks[c]];
  return out;
}

/** The number of colour components in a JPEG's frame header (SOFn), or 0 when none is found. */
function jpegComponents(bytes: Uint8Array): number {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return 0;
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at++;
      continue;
    }
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    // SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC): the frame header, whose 8th byte is Nf.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return bytes[at + 9];
    at += 2 + length;
  }
  return 0;
}
