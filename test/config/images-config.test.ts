import { describe, expect, it } from 'vitest';
import { configGlobs } from '../../src/action/changes.js';
import { parseConfig } from '../../src/config/load.js';
import { configErrorOf } from '../helpers.js';

const IMAGES = `teacher: t/model.json
student: { layers: [{ type: flatten }, { type: dense, units: 2 }] }
data:
  train: { images: "data/train/**/*.jpg", size: [32, 24] }
  eval:  { images: ./data/eval/**/*.png, size: [32, 24], channels: 1 }
  classes: [cat, dog]
`;

describe('image-folder config', () => {
  it('resolves each glob against the config folder, escaping the folder, and fills the defaults', () => {
    const config = parseConfig(IMAGES, '/repo/ml (v2)/distill-gate.yml');
    expect(config.data.train).toEqual({ images: '/repo/ml \\(v2\\)/data/train/**/*.jpg', size: [32, 24], channels: 3 });
    expect(config.data.eval).toEqual({ images: '/repo/ml \\(v2\\)/data/eval/**/*.png', size: [32, 24], channels: 1 });
    expect(config.data.classes).toEqual(['cat', 'dog']);
    expect(config.data.normalize).toBeUndefined();
    const normalized = parseConfig(
      IMAGES.replace('classes: [cat, dog]', 'classes: sorted\n  normalize: { mean: [0.4] }'),
      '/cfg/x.yml',
    );
    expect(normalized.data.classes).toBe('sorted');
    expect(normalized.data.normalize).toEqual({ scale: 1 / 255, mean: [0.4], std: 1 });
  });

  it("the action's `paths: auto` watches the image globs, relative to the repository", () => {
    const config = parseConfig(IMAGES, '/repo/ml/distill-gate.yml');
    expect(configGlobs(config, '/repo')).toEqual(
      expect.arrayContaining(['ml/data/train/**/*.jpg', 'ml/data/eval/**/*.png']),
    );
  });

  it('refuses a per-channel list of the wrong length, a std of 0, and classes without image folders', () => {
    // eval has 1 channel: a 3-value mean fits train, not eval.
    expect(
      configErrorOf(
        IMAGES.replace('classes: [cat, dog]', 'classes: [cat, dog]\n  normalize: { mean: [0.1, 0.2, 0.3] }'),
      ),
    ).toMatch(/^\/cfg\/distill-gate\.yml:7:\d+ data\.normalize\.mean: has 3 values but data\.eval\.channels is 1/);
    expect(configErrorOf(IMAGES.replace('classes: [cat, dog]', 'normalize: { std: 0 }'))).toMatch(
      /data\.normalize\.std: must be > 0/,
    );
    expect(configErrorOf(IMAGES.replace('classes: [cat, dog]', 'classes: []'))).toMatch(
      /data\.classes: must be >= 1 items/,
    );
  });
});
