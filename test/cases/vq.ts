// Vector-quantiser test cases shared by test/vq.test.ts and the browser suite
// (test/browser/suite.ts). Platform-free: no node:*, no tap. The tests draw their data in turn
// from one Rng per test, so the order of each list matters.
import type { Capabilities } from '../../engine/device.js';
import type { Rng } from '../../engine/random.js';
import type { VqSchedule } from '../../engine/vq.js';

/** Whether the device has subgroups of exactly 8 lanes (what the reg kernel's shared codebook loads need). */
export const subgroupsOf8 = (caps: Capabilities) => caps.subgroups && caps.subgroupMinSize === 8 && caps.subgroupMaxSize === 8;

export interface NearestVariant {
  name: string;
  schedule: VqSchedule;
  subgroups?: boolean;
}

/**
 * The nearest-code kernels: reg with and (where the device has 8-lane subgroups) without
 * subgroup-shared codebook loads, and smem.
 */
export function nearestVariants(caps: Capabilities): NearestVariant[] {
  return [
    ...(subgroupsOf8(caps) ? [{ name: 'reg+subgroups', schedule: 'reg' as const, subgroups: true }] : []),
    { name: 'reg', schedule: 'reg', subgroups: false },
    { name: 'smem', schedule: 'smem' },
  ];
}

/** nearestCode is checked for every codebook size K here with every code width D. */
export const NEAREST_K = [1, 7, 128, 512, 4099];
export const NEAREST_D = [1, 3, 64];

/**
 * Codebooks whose later rows repeat earlier ones ([src, dst]: row dst is a copy of row src),
 * including pairs far apart (other tiles / threads).
 */
export const TIE_CASES: { k: number; d: number; pairs: [number, number][] }[] = [
  { k: 37, d: 5, pairs: [[3, 20], [3, 36], [0, 21], [7, 8], [10, 30]] },
  // codebook in a uniform array with subgroups; pairs in one and in different steps of 8
  { k: 200, d: 64, pairs: [[5, 150], [70, 71], [8, 199], [1, 9], [100, 180], [100, 101]] },
  { k: 4099, d: 64, pairs: [[5, 4000], [70, 2100], [70, 4098], [1, 64], [2047, 2048], [130, 131]] },
];

/** segmentSum cases: rows N, segments K, and whether every row goes to one code. */
export const SEGMENT_CASES: [number, number, boolean][] = [
  [1, 1, false],
  [5, 1, false],
  [1000, 7, false],
  [1037, 4099, false],
  [3000, 3, false],
  [5000, 512, true], // every row on one code: spread over segments, not one thread
];

/** Codebook and z with clear margins: each z row is a code plus small noise. */
export function vqData(rng: Rng, n: number, k: number, d: number) {
  const ed = rng.normalArray(k * d, 0, 1);
  const zd = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const j = rng.int(k);
    for (let c = 0; c < d; c++) zd[i * d + c] = ed[j * d + c] + 0.1 * rng.normal();
  }
  return { ed, zd };
}
