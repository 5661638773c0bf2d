import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCutShortReport } from '../../src/report/cut-short.js';
import { jsonPath, parseReport } from '../../src/report/report-schema.js';
import { readReport, readUntrustedReport } from '../../src/report/read.js';
import { fullSampleReport, sampleReport } from '../sample-report.js';

/** A report as report.json holds it: through JSON, so NaN and Infinity come back as null. */
const asJson = (value: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(value));
/** The report with one field replaced at a path of keys and indices. */
function edited(
  path: Array<string | number>,
  value: unknown,
  report: unknown = sampleReport(),
): Record<string, unknown> {
  const copy = asJson(report);
  let at: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  at[path[path.length - 1]] = value;
  return copy;
}

describe('the report.json schema', () => {
  it('reads back every report distill-gate writes, trusted or not', () => {
    for (const report of [sampleReport(), fullSampleReport()]) {
      expect(parseReport(asJson(report), 'report.json', 'trusted')).toEqual(asJson(report));
      expect(parseReport(asJson(report), 'report.json', 'untrusted')).toEqual(asJson(report));
    }
  });

  it('reads back the report of a run cut short before anything was measured (a matrix leg cancelled early)', () => {
    const cutShort = buildCutShortReport({
      config: {
        teacher: '/repo/models/teacher/model.json',
        student: { layers: [{ type: 'dense', units: 10 }] },
        distill: { temperature: 4, alpha: 0.9, epochs: 5, batchSize: 64, learningRate: 0.001, seed: 7 },
        file: '/repo/distill-gate.yml',
      },
      reason: 'the job was cancelled (SIGTERM) again',
      phase: 'preparing',
      metrics: {},
      gates: [],
      createdAt: '2026-11-25T12:00:00.000Z',
    });
    expect(parseReport(asJson(cutShort), 'report.json', 'untrusted')).toEqual(asJson(cutShort));
  });

  it.each([
    [['verdict'], 'passed', 'report.json: verdict: Invalid option'],
    [['gates', 0, 'status'], 'ok', 'report.json: gates[0].status: Invalid option'],
    [
      ['gates', 0, 'threshold'],
      '0.93',
      'report.json: gates[0].threshold: Invalid input: expected number, received string',
    ],
    [['gates', 0, 'metric'], '`x` <!-- -->', 'report.json: gates[0].metric: names no metric distill-gate measures'],
    [['metrics', 'agreement.top1'], '95%', 'report.json: metrics["agreement.top1"]: Invalid input: expected number'],
    // Printed unescaped in the markdown footer: a number or nothing.
    [['training', 'temperature'], '4 <!-- -->', 'report.json: training.temperature: Invalid input: expected number'],
    [['student', 'path'], 7, 'report.json: student.path: Invalid input: expected string'],
    [['reasons'], 'all good', 'report.json: reasons: Invalid input: expected array'],
    [['runUrl'], 'javascript:alert(1)', 'report.json: runUrl: is not the address of a workflow run'],
  ])('refuses %j = %j, naming the file and the JSON path', (at, value, message) => {
    expect(() => parseReport(edited(at, value), 'report.json', 'untrusted')).toThrow(message);
  });

  // The per-class table and the shipped-student section print these as numbers and fixed words.
  it.each([
    [
      ['agreement', 'confusions', 0, 'teacher'],
      '4 <img>',
      'report.json: agreement.confusions[0].teacher: Invalid input: expected number',
    ],
    [['agreement', 'agreedCounts', 4], -1, 'report.json: agreement.agreedCounts[4]: Too small'],
    [['export', 'quantize'], 'int4 <b>', 'report.json: export.quantize: Invalid option'],
  ])('refuses %j = %j in the per-class and export blocks', (at, value, message) => {
    expect(() => parseReport(edited(at, value, fullSampleReport()), 'report.json', 'untrusted')).toThrow(message);
  });

  describe('an upload is validated as a whole: every number where a run can put it', () => {
    const timed = fullSampleReport({
      speedIntervals: { 'speed.speedup': { value: 4, low: 3.8, high: 4.3, rounds: 300, confidence: 0.999 } },
    });

    it.each([
      [
        ['metrics', 'size.ratio'],
        -3,
        'report.json: metrics["size.ratio"]: -3 is no value of size.ratio (a number from 0)',
      ],
      [
        ['metrics', 'agreement.top1'],
        7.5,
        'report.json: metrics["agreement.top1"]: 7.5 is no value of agreement.top1 (a fraction from 0 to 1)',
      ],
      [
        ['metrics', 'agreement.top5'],
        -0.2,
        'report.json: metrics["agreement.top5"]: -0.2 is no value of agreement.top5',
      ],
      [
        ['metrics', 'agreement.kappa'],
        1.5,
        'report.json: metrics["agreement.kappa"]: 1.5 is no value of agreement.kappa (a number from -1 to 1)',
      ],
      [
        ['metrics', 'speed.studentMs'],
        0,
        'report.json: metrics["speed.studentMs"]: 0 is no value of speed.studentMs (a number above 0)',
      ],
      [['metrics', 'speed.speedup'], -4, 'report.json: metrics["speed.speedup"]: -4 is no value of speed.speedup'],
      [
        ['metrics', 'size.studentBytes'],
        12.5,
        'report.json: metrics["size.studentBytes"]: 12.5 is no value of size.studentBytes (a whole number from 0)',
      ],
      [['metrics', 'kl'], -1, 'report.json: metrics.kl: -1 is no value of kl (a number from 0)'],
      [['metrics', 'quantized.agreement.top1'], 93, 'report.json: metrics["quantized.agreement.top1"]: 93 is no value'],
      [['metrics', 'teacherDiff.agreement'], 2, 'report.json: metrics["teacherDiff.agreement"]: 2 is no value'],
      [['gates', 0, 'value'], 1.2, 'report.json: gates[0].value: 1.2 is no value of agreement.top1'],
      [['gates', 1, 'baseline'], -0.5, 'report.json: gates[1].baseline: -0.5 is no value of agreement.top1'],
      [
        ['speedComparison', 'baselineMs'],
        -0.48,
        'report.json: speedComparison.baselineMs: -0.48 is no value of speed.baselineStudentMs',
      ],
      [['speedComparison', 'confidence'], 1, 'report.json: speedComparison.confidence: 1 is not a confidence level'],
      [
        ['speedComparison', 'low'],
        null,
        'report.json: speedComparison.low: [-Infinity, 1.08] around 1.0417 is open, but 60 rounds always bound',
      ],
      [
        ['speedComparison', 'ratio'],
        1.2,
        'report.json: speedComparison.high: [1.01, 1.08] around 1.2 does not hold its own median',
      ],
      [
        ['speedIntervals', 'speed.speedup', 'high'],
        null,
        'report.json: speedIntervals["speed.speedup"].high: [3.8, Infinity] around 4 is open, but 300 rounds always bound',
      ],
      [
        ['speedIntervals', 'speed.speedup', 'rounds'],
        5,
        'report.json: speedIntervals["speed.speedup"].low: [3.8, 4.3] around 4 has ends, but 5 rounds are too few',
      ],
      [
        ['speedIntervals', 'agreement.top1'],
        { value: 0.9, low: 0.8, high: 1, rounds: 30, confidence: 0.999 },
        'report.json: speedIntervals["agreement.top1"]: agreement.top1 is not a timed metric',
      ],
      [['training', 'seconds'], -1, 'report.json: training.seconds: -1 is below 0'],
      [['training', 'alpha'], 3, 'report.json: training.alpha: 3 is not an alpha a run accepts'],
      [['training', 'epochs'], 50, 'report.json: training.epochs: 50 epochs are more than the 5 planned'],
      [['teacherDiff', 'moved', 0, 'head'], 15, 'report.json: teacherDiff.moved[0].head: 15 is no share of answers'],
    ])('refuses %j = %j', (at, value, message) => {
      const upload = edited(at, value, timed);
      expect(() => parseReport(upload, 'report.json', 'untrusted')).toThrow(message);
      expect(() => parseReport(upload, 'report.json', 'untrusted')).toThrow('so the uploaded report is refused');
    });

    it('an open interval over hundreds of rounds is refused whatever the rest says', () => {
      const forged = edited(
        ['speedIntervals', 'speed.speedup'],
        { value: 4, low: null, high: null, rounds: 400, confidence: 0.999 },
        timed,
      );
      expect(() => parseReport(forged, 'up/report.json', 'untrusted')).toThrow(
        /^up\/report\.json: speedIntervals\["speed\.speedup"\]\.low: \[-Infinity, Infinity\] around 4 is open, but 400 rounds always bound the 99\.9% interval of their median \(from 11 rounds on\)/,
      );
    });
  });

  // The log prints the backend as it is: a line break there could forge workflow commands.
  it.each([['backend'], ['environment', 'backend']])('refuses a %j that is not a backend name', (...at) => {
    expect(() => parseReport(edited(at, 'cpu\n::stop-commands::x'), 'report.json', 'untrusted')).toThrow(
      'is not the name of a backend',
    );
  });

  it('says an uploaded report is refused, and counts the further problems', () => {
    const forged = edited(['verdict'], 'passed', edited(['status'], 'done'));
    expect(() => parseReport(forged, 'up/report.json', 'untrusted')).toThrow(
      /^up\/report\.json: verdict: .* \(and 1 more problem\(s\)\)\. This is not a report\.json as distill-gate writes it, so the uploaded report is refused\.$/,
    );
  });

  it('keeps fields it does not know in a trusted report and drops them from an untrusted one', () => {
    const report = {
      ...asJson(sampleReport()),
      futureBlock: { note: '<script>' },
      training: { ...asJson(sampleReport().training), extra: 1 },
    };
    const trusted = parseReport(report, 'report.json', 'trusted') as unknown as Record<string, Record<string, unknown>>;
    const untrusted = parseReport(report, 'report.json', 'untrusted') as unknown as Record<
      string,
      Record<string, unknown>
    >;
    expect([trusted.futureBlock, trusted.training.extra]).toEqual([{ note: '<script>' }, 1]);
    expect([untrusted.futureBlock, untrusted.training.extra]).toEqual([undefined, undefined]);
  });

  it('turns the nulls JSON writes for NaN and Infinity back into numbers', () => {
    const report = fullSampleReport({
      metrics: { ...sampleReport().metrics, kl: NaN },
      // Too few rounds to bound the interval: its ends are open.
      speedComparison: { ...fullSampleReport().speedComparison!, low: -Infinity, high: Infinity, rounds: 4 },
    });
    const read = parseReport(asJson(report), 'report.json', 'untrusted');
    expect(read.metrics.kl).toBeNaN();
    expect([read.speedComparison!.low, read.speedComparison!.high]).toEqual([-Infinity, Infinity]);
  });

  it('reads files through the same schema, and a file that is not a report is named', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'distill-gate-schema-'));
    const file = path.join(dir, 'report.json');
    await writeFile(file, JSON.stringify(edited(['gates', 0, 'pass'], 'yes')));
    await expect(readReport(file)).rejects.toThrow(`${file}: gates[0].pass: Invalid input: expected boolean`);
    await expect(readUntrustedReport(file)).rejects.toThrow(`${file}: gates[0].pass`);
    await writeFile(file, '[1, 2]');
    await expect(readReport(file)).rejects.toThrow(`${file}: has no schemaVersion`);
    await writeFile(file, JSON.stringify({ ...sampleReport(), schemaVersion: 2 }));
    await expect(readReport(file)).rejects.toThrow(`${file}: has schemaVersion 2; this distill-gate reads version 1`);
  });

  it('writes JSON paths as a reader would type them', () => {
    expect(jsonPath(['gates', 3, 'baseline'])).toBe('gates[3].baseline');
    expect(jsonPath(['metrics', 'speed.studentMs'])).toBe('metrics["speed.studentMs"]');
    expect(jsonPath([])).toBe('(top level)');
  });
});
