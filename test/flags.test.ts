// Engine flags: one typed table, parsed from text (environment, URL) with one-line errors,
// set atomically, scoped by withFlags so a failing test cannot leak a setting.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { FLAG_SPECS, flagTable, flags, flagsFromUrl, parseFlags, resetFlags, setFlags, withFlags } from '../engine/flags.js';

t.afterEach(() => resetFlags());

t.test('defaults, and every switch has an environment variable and a description', async (t) => {
  t.equal(flags().convSchedule, 'auto');
  t.equal(flags().batchDispatches, 64);
  t.equal(flags().bindGroupCache, true);
  const table = flagTable();
  t.equal(table.length, Object.keys(FLAG_SPECS).length);
  for (const row of table) {
    t.match(row.env, /^VQ_[A-Z0-9_]+$/, `${row.name}: env name`);
    t.ok(row.doc.length > 10, `${row.name}: described`);
  }
  t.equal(new Set(table.map((r) => r.env)).size, table.length, 'environment names are unique');
});

t.test('text forms: booleans, integers, enums, patterns; errors name the variable', async (t) => {
  t.same(parseFlags({ VQ_CONV_WGRAD_ROWS: '0', VQ_LOG_COMPILE: '1', VQ_BATCH_DISPATCHES: '1', VQ_CONV_SCHEDULE: 'smem', VQ_MATMUL_TILE: '16x8', OTHER: 'x' }), {
    batchDispatches: 1,
    logCompile: true,
    matmulTile: '16x8',
    convSchedule: 'smem',
    convWgradRows: false,
  });
  t.same(parseFlags({ VQ_CONV_SCHEDULE: '' }), { convSchedule: 'auto' }, 'an empty variable means the default');
  t.same(parseFlags({ convWgradTextures: 'AX' }), { convWgradTextures: 'AX' }, 'flag names work too');
  t.throws(() => parseFlags({ VQ_BATCH_DISPATCHES: '0' }), /^VQ_BATCH_DISPATCHES must be an integer from 1 to 100000, got '0'$/);
  t.throws(() => parseFlags({ VQ_BATCH_DISPATCHES: 'many' }), /VQ_BATCH_DISPATCHES must be an integer/);
  t.throws(() => parseFlags({ VQ_CONV_WGRAD_ROWS: 'maybe' }), /VQ_CONV_WGRAD_ROWS must be 0 or 1 \(or true\/false\), got 'maybe'/);
  t.throws(() => parseFlags({ VQ_CONV_WGRAD_TEXTURES: 'B' }), /VQ_CONV_WGRAD_TEXTURES must be one of auto, 0, A, X, AX, got 'B'/);
  t.throws(() => parseFlags({ VQ_MATMUL_TILE: '16by8' }), /VQ_MATMUL_TILE must be ROWSxCOLS/);
  t.throws(() => parseFlags({ VQ_DAWN_POLL: '-3' }), /VQ_DAWN_POLL must be 'auto', 'spin' or a poll interval/);
  t.same(flagsFromUrl('?VQ_VQ_SCHEDULE=smem&convSchedule=reg&unrelated=1'), { convSchedule: 'reg', vqSchedule: 'smem' }, 'a page URL');
});

t.test('setFlags validates everything before changing anything', async (t) => {
  setFlags({ convSchedule: 'smem' });
  t.equal(flags().convSchedule, 'smem');
  t.throws(() => setFlags({ vqSchedule: 'reg', batchDispatches: -1 }), /flag batchDispatches \(VQ_BATCH_DISPATCHES\) must be an integer/);
  t.equal(flags().vqSchedule, 'auto', 'the valid part of a refused call was not applied');
  t.throws(() => setFlags({ noSuchFlag: 1 } as never), /unknown engine flag 'noSuchFlag'/);
  setFlags({ convSchedule: undefined });
  t.equal(flags().convSchedule, 'auto', 'undefined resets to the default');
});

t.test('withFlags restores the previous values after return, throw and async settle', async (t) => {
  t.equal(withFlags({ batchDispatches: 3 }, () => flags().batchDispatches), 3);
  t.equal(flags().batchDispatches, 64);
  t.throws(() => withFlags({ batchDispatches: 3 }, () => { throw new Error('boom'); }), /boom/);
  t.equal(flags().batchDispatches, 64, 'restored after a throw');
  await t.rejects(withFlags({ vqSubgroups: false }, async () => {
    await new Promise((r) => setTimeout(r, 5));
    t.equal(flags().vqSubgroups, false, 'in force across an await');
    throw new Error('late');
  }), /late/);
  t.equal(flags().vqSubgroups, true, 'restored after an async rejection');
  withFlags({ convSchedule: 'smem' }, () => withFlags({ convSchedule: 'reg' }, () => t.equal(flags().convSchedule, 'reg')));
  t.equal(flags().convSchedule, 'auto', 'nested scopes unwind');
});

t.test('Node fills flags from the VQ_* environment once; a bad value is a one-line init() error', async (t) => {
  const script = "const m = await import('./engine/node.ts'); console.log(JSON.stringify(m.flags())); try { await m.init(); } catch (e) { console.log('ERR ' + e.message); process.exit(3); } m.destroyGpu();";
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  const ok = run({ VQ_CONV_SCHEDULE: 'smem', VQ_BATCH_DISPATCHES: '7' });
  t.equal(ok.status, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout.split('\n')[0]), { convSchedule: 'smem', batchDispatches: 7 });
  const bad = run({ VQ_VQ_SCHEDULE: 'fast' });
  t.equal(bad.status, 3);
  t.match(bad.stdout, /ERR VQ_VQ_SCHEDULE must be one of auto, reg, smem, got 'fast'/);
});
