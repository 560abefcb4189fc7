// Generated files are never stale: the WGSL module matches shaders/*.wgsl and README's flag
// table matches engine/flags.ts (`npm run generate` rewrites both).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { README, WGSL_MODULE, renderFlagTable, renderWgslModule, withFlagTable } from '../scripts/generate.js';
import { WGSL_SOURCES } from '../engine/wgsl.generated.js';
import { wgslSource } from '../engine/shaders.js';

t.test('engine/wgsl.generated.ts matches shaders/*.wgsl', async (t) => {
  t.ok(readFileSync(WGSL_MODULE, 'utf8') === renderWgslModule(), 'engine/wgsl.generated.ts is stale: run `npm run generate`');
  t.equal(wgslSource('matmul'), readFileSync(new URL('../shaders/matmul.wgsl', import.meta.url), 'utf8'), 'a kernel family reads its .wgsl text');
  t.ok(Object.keys(WGSL_SOURCES).length >= 12, `${Object.keys(WGSL_SOURCES).length} shader files`);
  t.throws(() => wgslSource('no-such-shader'), /not in engine\/wgsl.generated.ts \(run `npm run generate`/);
});

t.test("README's flag table matches engine/flags.ts", async (t) => {
  const readme = readFileSync(README, 'utf8');
  t.ok(readme.includes(renderFlagTable()), "README's flag table is stale: run `npm run generate`");
  t.equal(withFlagTable(readme), readme, 'regenerating changes nothing');
  t.throws(() => withFlagTable('# no markers'), /no flag-table markers/);
});
