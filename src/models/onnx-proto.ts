import { InputError } from '../errors.js';

// Reads what distill-gate needs of an ONNX file without a protobuf library: whether it is one at
// all (and whole), the graph's nodes (to see whether an output is a Softmax), and its initializers
// (parameter count, weight bytes, external data files). onnxruntime reads the model itself; this
// pass exists so that a wrong or truncated file gets a message naming what is wrong with it,
// where onnxruntime only says "protobuf parsing failed".
//
// Wire format: a message is a sequence of fields, each a varint key (field number << 3 | wire
// type) and a value: wire type 0 a varint, 1 eight bytes, 2 a varint length and that many bytes
// (strings, bytes, sub-messages, packed repeated numbers), 5 four bytes. Field numbers are
// onnx/onnx.proto's.

/** TensorProto.DataType: the element types onnxruntime-node gives names to, by their enum value. */
export const ONNX_ELEMENT_BYTES: Record<number, number> = {
  1: 4,
  2: 1,
  3: 1,
  4: 2,
  5: 2,
  6: 4,
  7: 8,
  9: 1,
  10: 2,
  11: 8,
  12: 4,
  13: 8,
  16: 2,
};

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Graphs in its attributes (If's then_branch and else_branch, Loop's and Scan's body), by attribute name. */
  subgraphs?: Array<{ attribute: string; graph: OnnxGraph }>;
}

/** A subgraph (an If branch, a Loop or Scan body): its nodes and its outputs' names, in order. */
export interface OnnxGraph {
  nodes: OnnxNode[];
  outputs: string[];
}

export interface OnnxInitializer {
  name: string;
  dims: number[];
  dataType: number;
  /** Bytes of its data as stored (raw_data, the typed fields, or the external file's range). */
  bytes: number;
  /** Its data's file, relative to the model's folder, for tensors stored outside the model. */
  externalFile?: string;
}

/** A graph input or output as declared: its element type and shape. */
export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType (1 float32, 7 int64, ...); 0 for a non-tensor value (a sequence, a map). */
  elemType: number;
  /** A number for a fixed dimension, a string for a symbolic one ("batch"), null for an unnamed free one; undefined when the rank is unknown. */
  shape?: Array<number | string | null>;
}

export interface OnnxSummary {
  irVersion: number;
  producer: string;
  /** Opset of the default (ai.onnx) domain, 0 when the model imports none. */
  opset: number;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  /**
   * Weights that are not the main graph's initializers: the tensors of Constant nodes (paddle2onnx
   * writes every weight so) and the initializers and Constant tensors inside subgraphs.
   */
  constants: OnnxInitializer[];
  /** The graph's inputs, without those an initializer gives a default (onnxruntime does not ask for them). */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

/** Where a field's value lies: a varint's value, or a length-delimited field's byte range. */
interface Field {
  number: number;
  wireType: number;
  /** The varint's value (wire type 0); precise below 2^53, which covers every size and enum. */
  value: number;
  start: number;
  end: number;
}

class Truncated extends Error {}
class Malformed extends Error {}

/** The varint at `at` (before `end`) and where the next value starts. */
function readVarint(bytes: Uint8Array, at: number, end: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at + i >= end) throw new Truncated(`a number at byte ${at} runs past the end`);
    const byte = bytes[at + i];
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return [value, at + i + 1];
  }
  throw new Malformed(`a number at byte ${at} is longer than ten bytes`);
}

/** The fields of the message in bytes [start, end), in order. */
function* fields(bytes: Uint8Array, start: number, end: number): Generator<Field> {
  let at = start;
  while (at < end) {
    const keyAt = at;
    let key: number;
    [key, at] = readVarint(bytes, at, end);
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (number === 0) throw new Malformed(`byte ${keyAt} starts a field numbered 0`);
    if (wireType === 0) {
      let value: number;
      [value, at] = readVarint(bytes, at, end);
      yield { number, wireType, value, start: at, end: at };
      continue;
    }
    let size = wireType === 1 ? 8 : wireType === 5 ? 4 : -1;
    if (wireType === 2) [size, at] = readVarint(bytes, at, end);
    if (size < 0)
      throw new Malformed(
        `byte ${keyAt} starts field ${number} with wire type ${wireType}, which ONNX files do not use`,
      );
    if (at + size > end) {
      throw new Truncated(
        `field ${number} at byte ${keyAt} declares ${size} bytes but only ${end - at} remain${end === bytes.length ? ' in the file' : ''}`,
      );
    }
    yield { number, wireType, value: size, start: at, end: at + size };
    at += size;
  }
}

const text = (bytes: Uint8Array, f: Field) => new TextDecoder().decode(bytes.subarray(f.start, f.end));

/** Repeated int64s, unpacked (one field each, proto2's default) or packed (one length-delimited field). */
function pushInts(bytes: Uint8Array, f: Field, into: number[]): void {
  if (f.wireType === 0) into.push(f.value);
  else if (f.wireType === 2) {
    for (let at = f.start; at < f.end;) {
      let value: number;
      [value, at] = readVarint(bytes, at, f.end);
      into.push(value);
    }
  }
}

// ModelProto fields and the wire type each must have: ir_version=1, producer_name=2,
// producer_version=3, domain=4, model_version=5, doc_string=6, graph=7, opset_import=8,
// metadata_props=14, training_info=20, functions=25, configuration=26.
const MODEL_FIELDS: Record<number, number> = {
  1: 0,
  2: 2,
  3: 2,
  4: 2,
  5: 0,
  6: 2,
  7: 2,
  8: 2,
  14: 2,
  20: 2,
  25: 2,
  26: 2,
};

/**
 * The parts of an ONNX ModelProto distill-gate reads, or an InputError naming `where`: "not an
 * ONNX model" when the bytes do not start like one or hold no graph, "truncated" when a field runs
 * past the end of the file.
 */
export function readOnnxSummary(bytes: Uint8Array, where: string): OnnxSummary {
  const notOnnx = (why: string) =>
    new InputError(
      where,
      `is not an ONNX model (${why}). Expected an ONNX ModelProto (.onnx, e.g. from torch.onnx.export, tf2onnx or onnxmltools) or a TF.js model.json.`,
    );
  const summary: OnnxSummary = {
    irVersion: 0,
    producer: '',
    opset: 0,
    nodes: [],
    initializers: [],
    constants: [],
    inputs: [],
    outputs: [],
  };
  let graph: Field | undefined;
  let count = 0;
  try {
    for (const f of fields(bytes, 0, bytes.length)) {
      const expected = MODEL_FIELDS[f.number];
      // The first field decides whether this is a ModelProto at all: exporters write ir_version
      // first; anything that is not a ModelProto field with its wire type means another format.
      if (count++ === 0 && expected !== f.wireType) throw notOnnx(`its first bytes are not a ModelProto field`);
      if (expected !== undefined && expected !== f.wireType)
        throw notOnnx(`field ${f.number} at byte ${f.start} has the wrong wire type`);
      if (f.number === 1) summary.irVersion = f.value;
      else if (f.number === 2) summary.producer = text(bytes, f);
      else if (f.number === 7) graph = f;
      else if (f.number === 8) {
        let domain = '';
        let version = 0;
        for (const o of fields(bytes, f.start, f.end)) {
          if (o.number === 1 && o.wireType === 2) domain = text(bytes, o);
          else if (o.number === 2 && o.wireType === 0) version = o.value;
        }
        if (domain === '' || domain === 'ai.onnx') summary.opset = version;
      }
    }
    if (bytes.length === 0) throw notOnnx('the file is empty');
    if (!graph) throw notOnnx('it has no graph');
    readGraph(bytes, graph, summary);
  } catch (error) {
    if (error instanceof Truncated) {
      throw new InputError(
        where,
        `is truncated or corrupt: ${error.message} (${bytes.length} bytes read). Copy or export the ONNX file again.`,
      );
    }
    if (error instanceof Malformed) throw notOnnx(error.message);
    throw error;
  }
  return summary;
}

function readGraph(bytes: Uint8Array, graph: Field, summary: OnnxSummary): void {
  // GraphProto: node=1, initializer=5, input=11, output=12.
  const inputs: OnnxValueInfo[] = [];
  for (const g of fields(bytes, graph.start, graph.end)) {
    if (g.wireType !== 2) continue;
    if (g.number === 1) summary.nodes.push(readNode(bytes, g, summary.constants, 0));
    else if (g.number === 5) summary.initializers.push(readTensor(bytes, g));
    else if (g.number === 11) inputs.push(readValueInfo(bytes, g));
    else if (g.number === 12) summary.outputs.push(readValueInfo(bytes, g));
  }
  const initialized = new Set(summary.initializers.map((i) => i.name));
  summary.inputs = inputs.filter((input) => !initialized.has(input.name));
}

/** Subgraphs nested deeper than this are not read (no exporter nests so deep; a crafted file must not overflow the stack). */
const MAX_SUBGRAPH_DEPTH = 32;

/** A NodeProto; the tensors of its attributes (a Constant's value) and of its subgraphs go to `constants`. */
function readNode(bytes: Uint8Array, field: Field, constants: OnnxInitializer[], depth: number): OnnxNode {
  // NodeProto: input=1, output=2, op_type=4, attribute=5.
  const node: OnnxNode = { op: '', inputs: [], outputs: [] };
  for (const n of fields(bytes, field.start, field.end)) {
    if (n.wireType !== 2) continue;
    if (n.number === 1) node.inputs.push(text(bytes, n));
    else if (n.number === 2) node.outputs.push(text(bytes, n));
    else if (n.number === 4) node.op = text(bytes, n);
    else if (n.number === 5) {
      // AttributeProto: name=1, t=5, g=6, tensors=10, graphs=11.
      let attribute = '';
      const graphs: Field[] = [];
      for (const a of fields(bytes, n.start, n.end)) {
        if (a.wireType !== 2) continue;
        if (a.number === 1) attribute = text(bytes, a);
        else if (a.number === 5 || a.number === 10) constants.push(readTensor(bytes, a));
        else if ((a.number === 6 || a.number === 11) && depth < MAX_SUBGRAPH_DEPTH) graphs.push(a);
      }
      for (const g of graphs)
        (node.subgraphs ??= []).push({ attribute, graph: readSubgraph(bytes, g, constants, depth + 1) });
    }
  }
  return node;
}

/** A GraphProto inside a node's attribute: its nodes, its outputs' names, and its weights (into `constants`). */
function readSubgraph(bytes: Uint8Array, field: Field, constants: OnnxInitializer[], depth: number): OnnxGraph {
  const graph: OnnxGraph = { nodes: [], outputs: [] };
  for (const g of fields(bytes, field.start, field.end)) {
    if (g.wireType !== 2) continue;
    if (g.number === 1) graph.nodes.push(readNode(bytes, g, constants, depth));
    else if (g.number === 5) constants.push(readTensor(bytes, g));
    else if (g.number === 12) graph.outputs.push(readValueInfo(bytes, g).name);
  }
  return graph;
}

function readValueInfo(bytes: Uint8Array, value: Field): OnnxValueInfo {
  // ValueInfoProto: name=1, type=2. TypeProto: tensor_type=1. TypeProto.Tensor: elem_type=1,
  // shape=2. TensorShapeProto: dim=1. Dimension: dim_value=1, dim_param=2.
  const info: OnnxValueInfo = { name: '', elemType: 0 };
  const sub = (f: Field, number: number) =>
    [...fields(bytes, f.start, f.end)].filter((x) => x.number === number && x.wireType === 2);
  for (const v of fields(bytes, value.start, value.end)) {
    if (v.number === 1 && v.wireType === 2) info.name = text(bytes, v);
    if (v.number !== 2 || v.wireType !== 2) continue;
    for (const tensor of sub(v, 1)) {
      for (const t of fields(bytes, tensor.start, tensor.end)) {
        if (t.number === 1 && t.wireType === 0) info.elemType = t.value;
        if (t.number !== 2 || t.wireType !== 2) continue;
        info.shape = sub(t, 1).map((dim) => {
          let size: number | string | null = null;
          for (const d of fields(bytes, dim.start, dim.end)) {
            if (d.number === 1 && d.wireType === 0)
              size = d.value < 2 ** 53 ? d.value : null; // a -1 some exporters write for "free"
            else if (d.number === 2 && d.wireType === 2) size = text(bytes, d);
          }
          return size;
        });
      }
    }
  }
  return info;
}

function readTensor(bytes: Uint8Array, tensor: Field): OnnxInitializer {
  // TensorProto: dims=1, data_type=2, float_data=4, int32_data=5, string_data=6, int64_data=7,
  // name=8, raw_data=9, double_data=10, uint64_data=11, external_data=13, data_location=14.
  const out: OnnxInitializer = { name: '', dims: [], dataType: 0, bytes: 0 };
  // Values in the typed fields rather than raw_data (some exporters write small tensors so).
  let typed = false;
  let external: { location?: string; length?: number } | undefined;
  for (const t of fields(bytes, tensor.start, tensor.end)) {
    if (t.number === 1) pushInts(bytes, t, out.dims);
    else if (t.number === 2 && t.wireType === 0) out.dataType = t.value;
    else if (t.number === 8 && t.wireType === 2) out.name = text(bytes, t);
    else if (t.number === 9 && t.wireType === 2) out.bytes = t.end - t.start;
    else if ([4, 5, 7, 10, 11].includes(t.number)) typed = true;
    else if (t.number === 13 && t.wireType === 2) {
      // StringStringEntryProto: key=1, value=2; keys location, offset, length, checksum.
      let key = '';
      let value = '';
      for (const e of fields(bytes, t.start, t.end)) {
        if (e.number === 1) key = text(bytes, e);
        else if (e.number === 2) value = text(bytes, e);
      }
      external ??= {};
      if (key === 'location') external.location = value;
      else if (key === 'length') external.length = Number(value);
    } else if (t.number === 14 && t.wireType === 0 && t.value === 1) external ??= {};
  }
  const elements = out.dims.reduce((a, b) => a * b, 1);
  if (external) {
    out.externalFile = external.location ?? '';
    out.bytes = external.length ?? elements * (ONNX_ELEMENT_BYTES[out.dataType] ?? 4);
  } else if (out.bytes === 0 && typed) {
    // Typed fields may be packed varints (int64_data), so their stored size is not the tensor's;
    // the tensor's own size is what it weighs in memory.
    out.bytes = elements * (ONNX_ELEMENT_BYTES[out.dataType] ?? 4);
  }
  return out;
}
