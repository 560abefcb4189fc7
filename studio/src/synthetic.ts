// The built-in synthetic faces as the Node trainer sees them: the same generator and seed, the
// train split first, then valid and test.
import { IMAGE_VALUES, u8ToFloat } from '../../train/data/preprocess.js';
import { SYNTHETIC_DEFAULTS, renderSyntheticFaces } from '../../train/data/synthetic.js';

export const SYNTHETIC_TRAIN_IMAGES = SYNTHETIC_DEFAULTS.train;
/** Index of the first validation face. */
export const SYNTHETIC_VALID_START = SYNTHETIC_DEFAULTS.train;

/** Faces at dataset indices `idx`, planar floats in [-0.5, 0.5]. */
export function syntheticImages(idx: ArrayLike<number>): Float32Array {
  const u8 = new Uint8Array(idx.length * IMAGE_VALUES);
  renderSyntheticFaces(SYNTHETIC_DEFAULTS.seed, idx, u8);
  return u8ToFloat(u8);
}
