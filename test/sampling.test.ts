// The seed's batch order (`reshuffle`): every step draws `next(iter(loader))` on a shuffled
// DataLoader, i.e. the first B images of a fresh random permutation: B distinct images per
// batch, no epochs, every image equally likely; seeded, and resumable from a checkpoint.
import t from 'tap';
import { syntheticDataset } from '../train/data/dataset.js';
import { DataLoader } from '../train/data/loader.js';

const ds = syntheticDataset({ seed: 5, train: 10, valid: 2, test: 2 });

async function draws(l: DataLoader, n: number): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < n; i++) out.push(Array.from((await l.nextBatch()).indices));
  return out;
}

t.test('reshuffle: distinct images per batch, independent batches, uniform, seeded, resumable', async (t) => {
  const a = new DataLoader(ds, { batchSize: 4, seed: 3, sampling: 'reshuffle', prefetch: 'none' });
  t.teardown(() => a.close());
  const batches = await draws(a, 3000);
  t.ok(batches.every((b) => new Set(b).size === 4 && b.every((i) => i >= 0 && i < 10)), 'each batch: 4 distinct train images');
  // no epochs: with epochs of 10 images, batches 1-2 and the first half of 3 would never repeat an image
  const repeats = batches.slice(0, 300).filter((b, i) => i > 0 && b.some((x) => batches[i - 1].includes(x))).length;
  t.ok(repeats > 100, `consecutive batches share images (${repeats} of 299), unlike shuffled epochs`);
  const counts = new Array<number>(10).fill(0);
  for (const b of batches) for (const i of b) counts[i]++;
  // 12000 draws, 1200 expected per image; binomial sd ~ 33
  t.ok(counts.every((c) => Math.abs(c - 1200) < 200), `every image about equally often: ${counts.join(' ')}`);
  const firsts = new Array<number>(10).fill(0);
  for (const b of batches) firsts[b[0]]++;
  t.ok(firsts.every((c) => Math.abs(c - 300) < 90), `the batch's first image is uniform too: ${firsts.join(' ')}`);

  const same = new DataLoader(ds, { batchSize: 4, seed: 3, sampling: 'reshuffle', prefetch: 'inline' });
  t.teardown(() => same.close());
  t.same(await draws(same, 5), batches.slice(0, 5), 'the same seed gives the same batches (inline prefetch too)');
  const state = JSON.parse(JSON.stringify(same.getState()));
  const resumed = new DataLoader(ds, { batchSize: 4, seed: 3, sampling: 'reshuffle', prefetch: 'none' });
  t.teardown(() => resumed.close());
  resumed.setState(state);
  t.same(await draws(resumed, 5), batches.slice(5, 10), 'resumed from a saved state: the batches the run would have seen');
  t.throws(() => resumed.setState({ ...state, sampling: 'shuffle' }), /loader state is for/);

  const big = new DataLoader(ds, { batchSize: 14, seed: 1, sampling: 'reshuffle', prefetch: 'none' });
  t.teardown(() => big.close());
  const [b] = await draws(big, 1);
  t.same([...b.slice(0, 10)].sort((x, y) => x - y), [...Array(10).keys()], 'a batch larger than the split: all of it first...');
  t.equal(new Set(b.slice(10)).size, 4, '...then the first images of another permutation');
});
