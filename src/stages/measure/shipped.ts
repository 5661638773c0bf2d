// The student as it ships with quantized weights: its bytes and its agreement, loaded back as an
// app loads it.
import { type Tf } from '../../backend/resolve.js';
import type { Config } from '../../config/load.js';
import { measureAgreement } from '../../measure/agreement.js';
import type { StageMetrics } from '../../measure/metrics.js';
import { sizeMetrics } from '../../measure/size.js';
import {
  describeClipped,
  exportArtifacts,
  quantizedBytes,
  saveToMemory,
  type ExportPlan,
} from '../../models/export.js';
import { studentLayers, wrapLayersModel } from '../../models/model.js';
import { predictLogits } from '../../models/predict.js';
import type { Session } from '../prepare.js';
import { nonFiniteWarnings } from './non-finite.js';

/**
 * The student as it ships with quantized weights: the bytes it occupies (`size.studentBytes`,
 * beside the float32 `size.studentFloatBytes`) and, when agreement is measured, its agreement, KL
 * and accuracy with the weights quantized and loaded back by stock TF.js, which dequantizes them
 * as an app's `tf.loadLayersModel` will. Measured on logits (the softmax an export may append
 * changes no top-1 answer, and would lose precision in the KL).
 */
export async function shippedStudentMetrics(
  tf: Tf,
  { student, teacher, evalSet }: Pick<Session, 'student' | 'teacher' | 'evalSet'>,
  plan: ExportPlan,
  config: Config,
  teacherEvalLogits: Float32Array,
  studentEvalLogits: Float32Array | undefined,
): Promise<{ size: Partial<StageMetrics<'size'>>; agreement?: StageMetrics<'quantized'>; warnings: string[] }> {
  const artifacts = await saveToMemory(tf, studentLayers(student));
  const shippedBytes = quantizedBytes(artifacts.weightSpecs ?? [], plan.quantize);
  // The size metrics of the student that ships, beside its float32 bytes.
  const size = {
    ...sizeMetrics(teacher, { params: student.params, bytes: shippedBytes }),
    'size.studentFloatBytes': student.bytes,
  };
  // student/ is written from the same artifacts with the same clipping: said once, here.
  const warnings: string[] = [];
  const quantized = exportArtifacts(
    artifacts,
    { quantize: plan.quantize, output: 'logits' },
    student.output,
    (clipped) => warnings.push(describeClipped(clipped, plan.quantize)),
  );
  if (!studentEvalLogits) return { size, warnings };
  const model = wrapLayersModel(await tf.loadLayersModel(tf.io.fromMemory(quantized)), shippedBytes);
  let logits: Float32Array;
  try {
    logits = await predictLogits(tf, model, evalSet);
  } finally {
    model.dispose();
  }
  const { metrics, nonFinite } = measureAgreement(
    teacherEvalLogits,
    logits,
    student.outputWidth,
    config.measure.topK,
    evalSet.y,
  );
  warnings.push(
    ...nonFiniteWarnings(nonFinite, evalSet, config, plan.quantize as Exclude<ExportPlan['quantize'], 'none'>),
  );
  return {
    size,
    warnings,
    agreement: {
      'quantized.agreement.top1': metrics['agreement.top1'],
      'quantized.kl': metrics.kl,
      ...(evalSet.y ? { 'quantized.accuracy': metrics['accuracy.student'] } : {}),
    },
  };
}
