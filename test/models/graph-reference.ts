/**
 * A hand-written evaluator for the fixture GraphModels (fixtures/graph-models.ts), in plain
 * doubles and without TF.js: it reads model.json and the shard as the converter's format defines
 * them and runs the ops the fixtures use, one row at a time. Tests compare TF.js against it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

interface Node {
  name: string;
  op: string;
  input?: string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- attr values are whatever the converter wrote
  attr?: Record<string, any>;
}
export interface ModelJson {
  signature: {
    inputs: Record<string, { name: string }>;
    outputs: Record<string, { name: string; tensorShape: { dim: Array<{ size: string }> } }>;
  };
  modelTopology: { node: Node[] };
  weightsManifest: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[]; dtype: string }> }>;
}

export async function readFixture(
  dir: string,
): Promise<{ json: ModelJson; weights: Map<string, { shape: number[]; values: Float32Array }> }> {
  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as ModelJson;
  const weights = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const group of json.weightsManifest) {
    const data = Buffer.concat(await Promise.all(group.paths.map((p) => readFile(path.join(dir, p)))));
    let offset = 0;
    for (const w of group.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      weights.set(w.name, {
        shape: w.shape,
        values: new Float32Array(data.buffer.slice(data.byteOffset + offset, data.byteOffset + offset + count * 4)),
      });
      offset += count * 4;
    }
  }
  return { json, weights };
}

/** The value of tensor `output` ("Identity_1:0" or a node name) for one input row. */
export function evaluate(fixture: Awaited<ReturnType<typeof readFixture>>, row: number[], output: string): number[] {
  const nodes = new Map(fixture.json.modelTopology.node.map((n) => [n.name, n]));
  const memo = new Map<string, number[]>();
  const matmul = (x: number[], name: string) => {
    const {
      shape: [rows, cols],
      values,
    } = fixture.weights.get(name)!;
    if (x.length !== rows) throw new Error(`shape mismatch at ${name}`);
    return Array.from({ length: cols }, (_, j) => x.reduce((sum, xi, i) => sum + xi * values[i * cols + j], 0));
  };
  const bias = (x: number[], name: string) => x.map((v, j) => v + fixture.weights.get(name)!.values[j]);
  const relu = (x: number[]) => x.map((v) => Math.max(0, v));
  const value = (ref: string): number[] => {
    const name = ref.split(':')[0];
    if (memo.has(name)) return memo.get(name)!;
    const node = nodes.get(name)!;
    const inputs = node.input ?? [];
    let out: number[];
    switch (node.op) {
      case 'Placeholder':
        out = row;
        break;
      case 'MatMul':
        out = matmul(value(inputs[0]), inputs[1]);
        break;
      case 'BiasAdd':
        out = bias(value(inputs[0]), inputs[1]);
        break;
      case '_FusedMatMul': {
        const fused = (node.attr!.fused_ops.list.s as string[]).map((s) => Buffer.from(s, 'base64').toString());
        out = matmul(value(inputs[0]), inputs[1]);
        if (fused[0] === 'BiasAdd') out = bias(out, inputs[2]);
        if (fused[1] === 'Relu') out = relu(out);
        break;
      }
      case 'Relu':
        out = relu(value(inputs[0]));
        break;
      case 'Sigmoid':
        out = value(inputs[0]).map((v) => 1 / (1 + Math.exp(-v)));
        break;
      case 'Softmax': {
        const z = value(inputs[0]);
        const m = Math.max(...z);
        const e = z.map((v) => Math.exp(v - m));
        const s = e.reduce((a, b) => a + b, 0);
        out = e.map((v) => v / s);
        break;
      }
      case 'Identity':
        out = value(inputs[0]);
        break;
      default:
        throw new Error(`op ${node.op} not in the reference`);
    }
    memo.set(name, out);
    return out;
  };
  return value(output);
}
