import type { LayersModel } from '@tensorflow/tfjs';
import type { Tf } from '../backend/resolve.js';
import type { LayerSpec } from '../config/schema.js';
import { locatedCulprit } from '../config/locate.js';
import { InputError } from '../errors.js';
import { firstLine, loadModel, wrapLayersModel } from './model.js';
import { type LoadedModel } from './loaded-model.js';

/** Initialiser arguments each layer type owns; each gets its own seed so runs repeat exactly. */
const INITIALISER_KEYS: Record<string, string[]> = {
  dense: ['kernelInitializer'],
  conv2d: ['kernelInitializer'],
  depthwiseConv2d: ['depthwiseInitializer'],
  separableConv2d: ['depthwiseInitializer', 'pointwiseInitializer'],
};
const SEEDABLE = [
  'glorotUniform',
  'glorotNormal',
  'heNormal',
  'heUniform',
  'leCunNormal',
  'leCunUniform',
  'randomNormal',
  'randomUniform',
  'truncatedNormal',
  'orthogonal',
] as const;

export type StudentSource = { layers: LayerSpec[] } | { model: string };

/** `key` names the student in errors: `student`, or a sweep candidate's `students[2]`. */
export async function buildStudent(
  tf: Tf,
  source: StudentSource,
  teacherInputShape: (number | null)[],
  seed: number,
  key = 'student',
): Promise<LoadedModel> {
  if ('model' in source) return loadModel(tf, source.model, 'student');
  if (teacherInputShape.some((d) => d === null)) {
    throw new InputError(
      'teacher input shape',
      `[${teacherInputShape.map((d) => d ?? 'None').join(', ')}] has a free dimension; a student given by layers needs a fixed input shape.`,
    );
  }
  const model = tf.sequential();
  source.layers.forEach((spec, index) => {
    const { type, ...args } = spec;
    const layerArgs: Record<string, unknown> = { ...args };
    if (index === 0) layerArgs.inputShape = teacherInputShape;
    for (const [k, initialiser] of (INITIALISER_KEYS[type] ?? []).entries()) {
      const where = locatedCulprit(
        source,
        `${key}.layers[${index}].${initialiser}`,
        ['layers', index, initialiser],
        ['layers', index],
      );
      layerArgs[initialiser] = seededInitialiser(
        tf,
        layerArgs[initialiser] ?? 'glorotUniform',
        seed * 1000 + index * 10 + k,
        where,
      );
    }
    if (type === 'dropout' && layerArgs.seed === undefined) layerArgs.seed = seed * 1000 + index * 10;
    try {
      const factory = tf.layers[type] as unknown as (a: Record<string, unknown>) => ReturnType<typeof tf.layers.dense>;
      model.add(factory(layerArgs));
    } catch (error) {
      // Where the layer stands in the config, when it came from one: TF.js names no place.
      throw new InputError(
        locatedCulprit(source, `${key}.layers[${index}] (${type})`, ['layers', index]),
        `${firstLine(error)}.`,
      );
    }
  });
  return wrapLayersModel(model, weightBytes(model));
}

function seededInitialiser(tf: Tf, value: unknown, seed: number, where: string) {
  if (typeof value !== 'string') return value;
  if (!(SEEDABLE as readonly string[]).includes(value)) {
    if (value === 'zeros' || value === 'ones') return value;
    throw new InputError(
      where,
      `initialiser "${value}" is not one distill-gate can seed; use one of ${SEEDABLE.join(', ')}, zeros, ones.`,
    );
  }
  const factory = tf.initializers[value as (typeof SEEDABLE)[number]] as (a: { seed: number }) => unknown;
  return factory({ seed });
}

/** Trainable and non-trainable weights, as float32 bytes (what the saved student occupies). */
export function weightBytes(model: LayersModel): number {
  return model.weights.reduce((sum, w) => sum + w.shape.reduce((a: number, b) => a * (b ?? 1), 1) * 4, 0);
}
