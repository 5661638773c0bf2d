import type { RawConfig } from '../config/schema.js';
import { loadSplit, type Dataset, type LoadOptions } from './dataset.js';
import { listImages, loadImageSplit, resolveClasses, type ImageLoadOptions } from './images.js';

/**
 * The train and eval splits of a config's `data`, each a data file (.npy, CSV) or an image folder.
 * Image folders are listed first, so that one class list (the teacher's outputs) numbers both.
 */
export async function loadSplits(
  data: RawConfig['data'],
  options: LoadOptions & ImageLoadOptions,
): Promise<{ train: Dataset; evalSet: Dataset }> {
  const names = ['train', 'eval'] as const;
  const listings = await Promise.all(
    names.map(async (name) => {
      const spec = data[name];
      return 'images' in spec ? await listImages(name, spec, options.configFile) : undefined;
    }),
  );
  const found = listings.filter((listing) => listing !== undefined);
  const classes = found.length > 0 ? resolveClasses(found, data.classes, options.configFile) : [];
  const [train, evalSet] = await Promise.all(
    names.map((name, i) => {
      const listing = listings[i];
      return listing
        ? loadImageSplit(listing, classes, { ...options, normalize: data.normalize })
        : loadSplit(data[name], name, options);
    }),
  );
  return { train, evalSet };
}
