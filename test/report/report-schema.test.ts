import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCutShortReport } from '../../src/report/cut-short.js';
import { jsonPath, parseReport } from '../../src/report/report-schema.js';
import { readReport, readUntrustedReport } from '../../src/report/report.js';
import { fullSampleReport, sampleReport } from '../sample-report.js';

/** A report as report.json holds it: through JSON, so NaN and Infinity come back as null. */
const asJson = (value: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(value));
/** The report with one field replaced at a path of keys and indices. */
function edited(path: Array<string | number>, value: unknown, report: unknown = sampleReport()): Record<string, unknown> {
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
    [['gates', 0, 'threshold'], '0.93', 'report.json: gates[0].threshold: Invalid input: expected number, received string'],
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
    [['agreement', 'confusions', 0, 'teacher'], '4 <img>', 'report.json: agreement.confusions[0].teacher: Invalid input: expected number'],
    [['agreement', 'agreedCounts', 4], -1, 'report.json: agreement.agreedCounts[4]: Too small'],
    [['export', 'quantize'], 'int4 <b>', 'report.json: export.quantize: Invalid option'],
  ])('refuses %j = %j in the per-class and export blocks', (at, value, message) => {
    expect(() => parseReport(edited(at, value, fullSampleReport()), 'report.json', 'untrusted')).toThrow(message);
  });

  // The log prints the backend as it is: a line break there could forge workflow commands.
  it.each([['backend'], ['environment', 'backend']])('refuses a %j that is not a backend name', (...at) => {
    expect(() => parseReport(edited(at, 'cpu\n::stop-commands::x'), 'report.json', 'untrusted')).toThrow('is not the name of a backend');
  });

  it('says an uploaded report is refused, and counts the further problems', () => {
    const forged = edited(['verdict'], 'passed', edited(['status'], 'done'));
    expect(() => parseReport(forged, 'up/report.json', 'untrusted')).toThrow(
      /^up\/report\.json: verdict: .* \(and 1 more problem\(s\)\)\. This is not a report\.json as distill-gate writes it, so the uploaded report is refused\.$/,
    );
  });

  it('keeps fields it does not know in a trusted report and drops them from an untrusted one', () => {
    const report = { ...asJson(sampleReport()), futureBlock: { note: '<script>' }, training: { ...asJson(sampleReport().training), extra: 1 } };
    const trusted = parseReport(report, 'report.json', 'trusted') as unknown as Record<string, Record<string, unknown>>;
    const untrusted = parseReport(report, 'report.json', 'untrusted') as unknown as Record<string, Record<string, unknown>>;
    expect([trusted.futureBlock, trusted.training.extra]).toEqual([{ note: '<script>' }, 1]);
    expect([untrusted.futureBlock, untrusted.training.extra]).toEqual([undefined, undefined]);
  });

  it('turns the nulls JSON writes for NaN and Infinity back into numbers', () => {
    const report = fullSampleReport({
      metrics: { ...sampleReport().metrics, kl: NaN },
      speedComparison: { ...fullSampleReport().speedComparison!, low: -Infinity, high: Infinity },
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
