import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo, exampleWorkspace, quickConfig } from '../helpers.js';
import { CASES as FILE_CASES } from './cases.js';
import { IMAGE_CASES } from './image-cases.js';
import { SWEEP_CASES } from './sweep-cases.js';

const CASES = [...FILE_CASES, ...IMAGE_CASES, ...SWEEP_CASES];

const passed: string[] = [];

afterAll(() => {
  const areas = [...new Set(CASES.map((c) => c.area))];
  const byArea = areas.map((area) => `${area} ${CASES.filter((c) => c.area === area).length}`).join(', ');
  console.log(`bad-input corpus: ${CASES.length} cases (${byArea}), ${passed.length} passed`);
});

describe('bad-input corpus: exit 2 and one message naming the culprit', () => {
  it('has at least 40 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES.map((c) => [`${c.area}: ${c.name}`, c] as const))('%s', async (_label, corpusCase) => {
    const dir = await exampleWorkspace(quickConfig());
    await corpusCase.setup(dir);
    const capture = captureIo();
    const code = await main(
      ['run', '--config', path.join(dir, 'distill-gate.yml'), '--out', path.join(dir, 'out'), '--quiet'],
      capture.io,
    );
    const stderr = capture.stderr();
    expect(stderr).toMatch(/^distill-gate: error: /);
    expect(stderr).toMatch(corpusCase.message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(code).toBe(2);
    passed.push(corpusCase.name);
  });
});
