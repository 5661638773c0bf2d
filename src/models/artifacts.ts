import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { assertNotLfsPointer } from '../data/lfs.js';

type ModelArtifacts = io.ModelArtifacts;
type WeightsManifestEntry = io.WeightsManifestEntry;

export interface ModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology?: unknown;
  weightsManifest?: Array<{ paths: string[]; weights: WeightsManifestEntry[] }>;
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
  modelInitializer?: unknown;
}

export type ModelFormat = 'layers-model' | 'graph-model';

export interface LoadedArtifacts {
  artifacts: ModelArtifacts;
  format: ModelFormat;
  /** Bytes of weight data as stored (after any quantization). */
  weightBytes: number;
}

const BYTES_PER_ELEMENT: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
  int8: 1,
  int16: 2,
  complex64: 8,
};

/** Bytes a manifest entry occupies in its shard, honouring quantization. */
export function entryBytes(entry: WeightsManifestEntry): number {
  const elements = entry.shape.reduce((a, b) => a * b, 1);
  const dtype = entry.quantization?.dtype ?? entry.dtype;
  const size = BYTES_PER_ELEMENT[dtype];
  if (size === undefined) throw new Error(`unsupported weight dtype "${dtype}" for ${entry.name}`);
  return elements * size;
}

/**
 * Reads a TF.js model.json and its weight shards from disk. The plain `@tensorflow/tfjs` package
 * has no file:// loader, and a hand-rolled one lets every failure name the file at fault. Only
 * JSON and raw bytes are read: a model is data, and loading it executes nothing.
 */
export async function readModelArtifacts(modelJsonPath: string): Promise<LoadedArtifacts> {
  let text: string;
  try {
    text = await readFile(modelJsonPath, 'utf8');
  } catch (error) {
    throw new InputError(
      modelJsonPath,
      `cannot read the model file (${(error as NodeJS.ErrnoException).code ?? error}). Expected a TF.js model.json with its weight shards beside it.`,
    );
  }
  assertNotLfsPointer(modelJsonPath, text);
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (error) {
    throw new InputError(
      modelJsonPath,
      `is not valid JSON (${(error as Error).message}). Expected a TF.js model.json as written by tf.Model.save() or tensorflowjs_converter.`,
    );
  }
  if (json === null || typeof json !== 'object' || !json.modelTopology || typeof json.modelTopology !== 'object') {
    throw new InputError(
      modelJsonPath,
      'has no "modelTopology": expected a TF.js model.json (LayersModel or GraphModel) as written by tf.Model.save() or tensorflowjs_converter.',
    );
  }
  const format = detectFormat(json);
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest))
    throw new InputError(`${modelJsonPath} weightsManifest`, 'must be a list of {paths, weights} groups.');
  const dir = path.dirname(modelJsonPath);
  const buffers: Buffer[] = [];
  const weightSpecs: WeightsManifestEntry[] = [];
  for (const [groupIndex, group] of manifest.entries()) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group?.weights)) {
      throw new InputError(`${modelJsonPath} weightsManifest[${groupIndex}]`, 'must have "paths" and "weights" lists.');
    }
    const shards: Buffer[] = [];
    for (const shard of group.paths) {
      const shardPath = path.resolve(dir, shard);
      // A shard path that climbs out of the model's folder is refused: model files come from PRs.
      if (path.relative(dir, shardPath).startsWith('..')) {
        throw new InputError(
          `${modelJsonPath} weightsManifest[${groupIndex}]`,
          `shard path "${shard}" leaves the model's folder.`,
        );
      }
      let bytes: Buffer;
      try {
        bytes = await readFile(shardPath);
      } catch (error) {
        throw new InputError(
          shardPath,
          `weight shard listed in ${path.basename(modelJsonPath)} cannot be read (${(error as NodeJS.ErrnoException).code ?? error}).`,
        );
      }
      // A clone without `git lfs pull` holds a pointer here: named as such, not as a truncated shard.
      assertNotLfsPointer(shardPath, bytes);
      shards.push(bytes);
    }
    const groupData = Buffer.concat(shards);
    let expected = 0;
    for (const entry of group.weights) {
      try {
        expected += entryBytes(entry);
      } catch (error) {
        throw new InputError(`${modelJsonPath} weightsManifest[${groupIndex}]`, (error as Error).message);
      }
    }
    if (groupData.length !== expected) {
      throw new InputError(
        path.resolve(dir, group.paths[group.paths.length - 1] ?? ''),
        `weight shards of group ${groupIndex} hold ${groupData.length} bytes but the manifest's ${group.weights.length} weights need ${expected} (a truncated or mismatched shard?).`,
      );
    }
    buffers.push(groupData);
    weightSpecs.push(...group.weights);
  }
  const weightData = Buffer.concat(buffers);
  return {
    format,
    weightBytes: weightData.length,
    artifacts: {
      modelTopology: json.modelTopology,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy ?? undefined,
      weightSpecs,
      weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
      signature: json.signature as ModelArtifacts['signature'],
      userDefinedMetadata: json.userDefinedMetadata as ModelArtifacts['userDefinedMetadata'],
      modelInitializer: json.modelInitializer as ModelArtifacts['modelInitializer'],
    },
  };
}

export function detectFormat(json: ModelJson): ModelFormat {
  if (json.format === 'graph-model') return 'graph-model';
  if (json.format === 'layers-model') return 'layers-model';
  const topology = json.modelTopology as Record<string, unknown>;
  return Array.isArray(topology.node) ? 'graph-model' : 'layers-model';
}

/** Writes artifacts as model.json + one shard, the layout tf.loadLayersModel reads. */
export async function writeModelArtifacts(
  dir: string,
  artifacts: ModelArtifacts,
): Promise<{ modelJson: string; bytes: number }> {
  await mkdir(dir, { recursive: true });
  const data = artifacts.weightData;
  const bytes = Buffer.concat((Array.isArray(data) ? data : data ? [data] : []).map((b) => Buffer.from(b)));
  const shardName = 'group1-shard1of1.bin';
  const json: ModelJson = {
    format: 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: 'distill-gate',
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [shardName], weights: artifacts.weightSpecs ?? [] }],
  };
  const modelJson = path.join(dir, 'model.json');
  await writeFile(path.join(dir, shardName), bytes);
  await writeFile(modelJson, JSON.stringify(json));
  return { modelJson, bytes: bytes.length };
}

export async function fileExists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
