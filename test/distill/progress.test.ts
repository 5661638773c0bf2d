import { describe, expect, it } from 'vitest';
import { describeProgress, duration, FIRST_AFTER_MS, NO_PROGRESS, phaseProgress } from '../../src/distill/progress.js';

// Issue #24 item 5: long phases show rows done, the rate and the time left; on a fake clock.

function sink(bar = false) {
  const clock = { now: 0 };
  const lines: string[] = [];
  const drawn: string[] = [];
  return {
    clock,
    lines,
    drawn,
    sink: {
      log: (l: string) => lines.push(l),
      ...(bar ? { bar: (t: string) => drawn.push(t) } : {}),
      clock: () => clock.now,
    },
  };
}

describe('progress of a long phase', () => {
  it('says nothing for a phase shorter than a few seconds', () => {
    const s = sink();
    const progress = phaseProgress("teacher's pass", 100, 'rows', s.sink);
    s.clock.now = FIRST_AFTER_MS - 1;
    progress.update(100);
    progress.finish();
    expect(s.lines).toEqual([]);
  });

  it('writes a line with rows done, rate and time left, then one every 10 s, in a log', () => {
    const s = sink();
    const progress = phaseProgress("teacher's pass", 2000, 'rows', s.sink);
    for (let t = 1; t <= 40; t++) {
      s.clock.now = t * 1000;
      progress.update(t * 10);
    }
    expect(s.lines).toEqual([
      "teacher's pass: 30/2,000 rows (1%), 10 rows/s, about 3 min 17 s left",
      "teacher's pass: 130/2,000 rows (6%), 10 rows/s, about 3 min 07 s left",
      "teacher's pass: 230/2,000 rows (11%), 10 rows/s, about 2 min 57 s left",
      "teacher's pass: 330/2,000 rows (16%), 10 rows/s, about 2 min 47 s left",
    ]);
    s.clock.now = 200_000;
    progress.update(2000);
    expect(s.lines.at(-1)).toBe("teacher's pass: 2,000/2,000 rows (100%), 10 rows/s, done in 3 min 20 s");
  });

  it('draws a bar in place on a terminal, ended by a newline', () => {
    const s = sink(true);
    const progress = phaseProgress('training', 100, 'rows', s.sink);
    s.clock.now = 4000;
    progress.update(50);
    progress.finish();
    expect(s.lines).toEqual([]);
    expect(s.drawn).toEqual([
      '\r[############............] training: 50/100 rows (50%), 13 rows/s, about 4 s left\u001b[K',
      '\n',
    ]);
  });

  it('shows nothing without a sink (library use)', () => {
    expect(phaseProgress('x', 1, 'rows')).toBe(NO_PROGRESS);
  });

  it('words rates and times plainly', () => {
    expect(describeProgress('speed', 3, 17, 'rounds', 12)).toBe(
      'speed: 3/17 rounds (17%), 0.25 rounds/s, about 56 s left',
    );
    expect(duration(3725)).toBe('1 h 02 min');
  });
});
