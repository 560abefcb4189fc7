// The generated WGSL of one seed layer (enc3, batch 32, lavapipe-like device) against snapshots
// in test/plans/, so a change to code generation shows up in review as a diff of those files.
// After a deliberate change: UPDATE_WGSL_SNAPSHOTS=1 npx tap test/kernel_source.test.ts
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as C from '../engine/conv.js';
import { regConvKernel, rowsWgradKernel, wsumKernel } from '../engine/conv/kernels.js';
import { FLAG_SPECS, type Flags } from '../engine/flags.js';
import { LAVAPIPE_CAPS } from './plans/caps.js';

const DEFAULTS = Object.fromEntries(Object.entries(FLAG_SPECS).map(([k, v]) => [k, v.default])) as Flags;
const g = C.conv2dGeometry([32, 128, 16, 16], [128, 128, 3, 3], { stride: 1, padding: 1 });
const kernels: Record<string, () => string> = {};
for (const op of ['fwd', 'dgrad'] as const) {
  const p = C.planConv(op, g, false, LAVAPIPE_CAPS, DEFAULTS);
  if (p.kind !== 'conv' || p.passes[0].kind !== 'reg') throw new Error('enc3 should run the reg conv kernel');
  const v = p.passes[0].v;
  kernels[`enc3.${op}`] = () => regConvKernel(v).code();
}
const w = C.planConv('wgrad', g, false, LAVAPIPE_CAPS, DEFAULTS);
if (w.kind !== 'wgrad' || w.plan.kind !== 'rows') throw new Error('enc3 should run the row-walking weight gradient');
const rows = w.plan.v;
kernels['enc3.wgrad'] = () => rowsWgradKernel(rows).code();
kernels['enc3.wsum'] = () => wsumKernel(1, 3).code();

const update = process.env.UPDATE_WGSL_SNAPSHOTS === '1';
for (const [name, code] of Object.entries(kernels)) {
  t.test(name, async (t) => {
    const file = fileURLToPath(new URL(`./plans/${name}.wgsl`, import.meta.url));
    if (update) writeFileSync(file, code());
    t.equal(code(), readFileSync(file, 'utf8'), `test/plans/${name}.wgsl`);
  });
}
