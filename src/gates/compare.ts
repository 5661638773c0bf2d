/**
 * @deprecated Transitional: judging lives in ./judge.js and `compareReports` (which builds a Report
 * and its markdown) in ../report/compare.js. This file only keeps old imports working; it is the
 * last import from gates/ into report/, and goes once src/pipeline.ts, src/cli/main.ts and
 * src/action/modes.ts import from those two.
 */
export * from './judge.js';
export { compareReports } from '../report/compare.js';
