import type { KernelBackend, TensorInfo } from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

/**
 * Bilinear resize of one [height, width, channels] image to `size`, by TF.js's ResizeBilinear
 * kernel of the cpu backend (plain JavaScript), called directly: the same floats on every runner
 * and whatever backend the run resolved (a GPU backend's kernel may round differently), without
 * switching the engine's current backend (image splits load concurrently) and without a tensor in
 * the engine's count. Half-pixel centres, as TF2's `tf.image.resize` (and so Keras) resizes.
 */
export function resizeBilinearOnCpu(
  tf: Tf,
  pixels: Float32Array,
  shape: readonly [number, number, number],
  size: readonly [number, number],
): Float32Array {
  const backend = tf.findBackend('cpu') as KernelBackend | null;
  if (!backend) throw new Error('the TF.js cpu backend is not registered: it resizes images');
  const kernel = tf.getKernel('ResizeBilinear', 'cpu');
  const inShape = [1, ...shape];
  const images: TensorInfo = { dataId: backend.write(pixels, inShape, 'float32'), shape: inShape, dtype: 'float32' };
  let out: TensorInfo | undefined;
  try {
    out = kernel.kernelFunc({
      inputs: { images },
      backend,
      attrs: { size: [...size], alignCorners: false, halfPixelCenters: true },
    }) as TensorInfo;
    return backend.readSync(out.dataId) as Float32Array;
  } finally {
    backend.disposeData(images.dataId);
    if (out) backend.disposeData(out.dataId);
  }
}
