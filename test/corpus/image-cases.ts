/** The bad-input corpus's image-folder cases: each starts from a scratch copy of fixtures/images. */
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IMAGES_CONFIG, IMAGES_EXAMPLE, encodePng, noisyImage } from '../../fixtures/images.js';
import { quickConfig } from '../helpers.js';
import type { CorpusCase } from './cases.js';

/** The image example in `dir`, its config edited by `edit`. */
const images =
  (edit: (config: string) => string = (c) => c, after?: (dir: string) => Promise<void>) =>
  async (dir: string) => {
    await cp(IMAGES_EXAMPLE, dir, { recursive: true });
    await writeFile(path.join(dir, 'distill-gate.yml'), edit(IMAGES_CONFIG));
    await after?.(dir);
  };
const replace = (from: string, to: string) => (config: string) => {
  if (!config.includes(from)) throw new Error(`the image config has no ${JSON.stringify(from)}`);
  return config.replace(from, to);
};
const TRAIN = 'train: { images: "data/train/**/*.{png,jpg}", size: [8, 8], channels: 3 }';

export const IMAGE_CASES: CorpusCase[] = [
  {
    area: 'config',
    name: 'image split key misspelt',
    setup: images(replace(TRAIN, 'train: { image: "data/train/**/*.png", size: [8, 8] }')),
    message: /distill-gate\.yml:\d+:\d+ data\.train\.image: unknown key\. Did you mean "images"\?/,
  },
  {
    area: 'config',
    name: 'image size not [height, width]',
    setup: images(replace('size: [8, 8], channels: 3 }\n  eval', 'size: 8, channels: 3 }\n  eval')),
    message: /distill-gate\.yml:\d+:\d+ data\.train\.size: expected (tuple|array), got 8/,
  },
  {
    area: 'config',
    name: 'image channels not 1, 3 or 4',
    setup: images(replace(TRAIN, TRAIN.replace('channels: 3', 'channels: 2'))),
    message: /data\.train\.channels: must be one of 1, 3, 4 \(got 2\)/,
  },
  {
    area: 'config',
    name: 'classes without an image folder',
    setup: (d) =>
      writeFile(
        path.join(d, 'distill-gate.yml'),
        quickConfig({ data: '  train: { x: data/train_x.npy }\n  eval: { x: data/eval_x.npy }\n  classes: [a, b]' }),
      ),
    message: /distill-gate\.yml:\d+:\d+ data\.classes: applies to image folders only/,
  },
  {
    area: 'config',
    name: 'normalize.mean with a value per channel of another image',
    setup: images(replace('mean: [0.5, 0.5, 0.5]', 'mean: [0.5, 0.5]')),
    message: /distill-gate\.yml:\d+:\d+ data\.normalize\.mean: has 2 values but data\.train\.channels is 3/,
  },
  {
    area: 'config',
    name: 'augment contrast above 1',
    setup: images(replace('seed: 7 }', 'seed: 7, augment: { contrast: 1.5 } }')),
    message: /distill-gate\.yml:\d+:\d+ distill\.augment\.contrast: must be <= 1 \(got 1\.5\)/,
  },
  {
    area: 'config',
    name: 'augment key misspelt',
    setup: images(replace('seed: 7 }', 'seed: 7, augment: { flips: true } }')),
    message: /distill\.augment\.flips: unknown key\. Did you mean "flip"\?/,
  },
  {
    area: 'data',
    name: 'augment on rows that are not images',
    setup: (d) =>
      writeFile(path.join(d, 'distill-gate.yml'), quickConfig({ distill: '{ epochs: 1, augment: { flip: true } }' })),
    message:
      /distill-gate\.yml distill\.augment: needs image-shaped inputs \[N, height, width, channels\], but the train split's samples have shape \[64\]/,
  },
  {
    area: 'data',
    name: 'image glob that matches nothing',
    setup: images(replace('data/eval/**/*.{png,jpg}', 'data/evaluation/**/*.png')),
    message: /distill-gate\.yml data\.eval\.images: the pattern ".*data\/evaluation\/\*\*\/\*\.png" matches no files/,
  },
  {
    area: 'data',
    name: 'image folders without classes',
    setup: images(replace("  classes: [cat, dog]                    # the teacher's outputs, in order\n", '')),
    message:
      /distill-gate\.yml data\.classes: is not set; the image folders name 2 classes: cat, dog\. .*`classes: \[cat, dog\]`/,
  },
  {
    area: 'data',
    name: 'image folder not in classes',
    setup: images(replace('classes: [cat, dog]', 'classes: [cat, dogs]')),
    message: /data\/train\/dog\/00\.png: is in folder "dog", which data\.classes does not list \(cat, dogs\)/,
  },
  {
    area: 'data',
    name: 'classes more than the teacher has outputs',
    setup: images(replace('classes: [cat, dog]', 'classes: [cat, dog, bird]')),
    message: /data\.classes: names 3 classes \(cat, dog, bird\) but the teacher \(.*model\.json\) has 2 outputs/,
  },
  {
    area: 'data',
    name: 'image that does not decode',
    setup: images(undefined, (d) =>
      writeFile(path.join(d, 'data/train/cat/03.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2])),
    ),
    message: /data\/train\/cat\/03\.jpg: cannot be decoded \(.+\); re-save it as PNG or JPEG/,
  },
  {
    area: 'data',
    name: 'greyscale image in an RGB split',
    setup: images(undefined, (d) =>
      writeFile(path.join(d, 'data/eval/dog/02.png'), encodePng(noisyImage([9, 9, 9], 8, 8, 1), 8, 8, 0)),
    ),
    message: /data\/eval\/dog\/02\.png: has 1 channel \(grey\) but data\.eval\.channels is 3/,
  },
  {
    area: 'data',
    name: 'image size other than the teacher takes',
    setup: images((c) => c.replaceAll('size: [8, 8]', 'size: [6, 6]')),
    message: /samples have shape \[6, 6, 3\] but the teacher \(.*model\.json\) takes \[8, 8, 3\]/,
  },
];
