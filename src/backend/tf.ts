import type * as bundledTf from '@tensorflow/tfjs';

/** The one TF.js handle passed through the pipeline (tfjs-node re-exports all of tfjs). */
export type Tf = typeof bundledTf;
