// The run lock (train/runlock.ts): one owner at a time, stale locks (ended process, an earlier
// run of the same scheduler task, no heartbeat) taken over and live ones not, the heartbeat
// noticing a takeover, and processes racing for one lock (fresh or stale): exactly one wins.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { tempDir } from './fixtures.js';
import { type LockOwner, RunLock, schedulerTask, staleReason } from '../train/runlock.js';

const REPO = join(import.meta.dirname, '..');
const HOST = hostname();

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

function owner(over: Partial<LockOwner>): LockOwner {
  return { token: 'x', host: HOST, pid: process.pid, task: null, started: '2024-01-01T00:00:00Z', ...over };
}

t.test('scheduler tasks', async (t) => {
  t.equal(schedulerTask({ SLURM_ARRAY_JOB_ID: '12', SLURM_ARRAY_TASK_ID: '3', SLURM_JOB_ID: '15' }), 'slurm 12_3');
  t.equal(schedulerTask({ SLURM_JOB_ID: '15' }), 'slurm 15');
  t.equal(schedulerTask({ JOB_COMPLETION_INDEX: '2', SWEEP_JOB_NAME: 'vqvae-sweep' }), 'k8s vqvae-sweep/2');
  t.equal(schedulerTask({}), null);
});

t.test('one owner; stale locks are taken over, live ones are not', async (t) => {
  const dir = tempDir(t, 'vqvae-lock-');
  const path = join(dir, 'run.lock');
  const a = RunLock.acquire(path);
  t.ok(a instanceof RunLock);
  const lock = a as RunLock;
  t.match(JSON.parse(readFileSync(path, 'utf8')), { host: HOST, pid: process.pid, token: lock.owner.token });
  const other = { host: HOST, pid: process.ppid, task: null };
  t.match(RunLock.acquire(path, { owner: other }), { heldBy: { pid: process.pid } }, 'held by a live process: refused');
  lock.release();
  t.notOk(existsSync(path), 'released');

  // an ended process on this host
  writeFileSync(path, JSON.stringify(owner({ pid: deadPid() })));
  const b = RunLock.acquire(path) as RunLock;
  t.match(b.tookOver?.reason, /its process \d+ on .* has ended/);
  t.ok(b.held());
  // release leaves a lock that is not its own alone
  writeFileSync(path, JSON.stringify(owner({ token: 'someone-else' })));
  b.release();
  t.ok(existsSync(path), 'a lock taken over since is not removed');

  // another host: live while it beats, stale without heartbeats
  writeFileSync(path, JSON.stringify(owner({ host: 'node17', pid: 4242 })));
  t.match(RunLock.acquire(path), { heldBy: { host: 'node17' } });
  const old = new Date(Date.now() - 11 * 60_000);
  utimesSync(path, old, old);
  const c = RunLock.acquire(path) as RunLock;
  t.match(c.tookOver?.reason, /no heartbeat for 6\d\d s/);
  c.release();

  // an earlier run of the same scheduler task (a requeued array task on another node)
  writeFileSync(path, JSON.stringify(owner({ host: 'node17', pid: 4242, task: 'slurm 12_3' })));
  const me = { host: 'node20', pid: 99, task: 'slurm 12_3' };
  const d = RunLock.acquire(path, { owner: me }) as RunLock;
  t.match(d.tookOver?.reason, /earlier run of this task \(slurm 12_3\) on node17/);
  d.release();

  t.equal(staleReason(owner({ host: 'node17', task: 'slurm 12_4' }), 1000, me), null, 'another task, beating: live');
  t.equal(staleReason(owner({ pid: process.ppid, task: 'slurm 12_3' }), 1000, { host: HOST, pid: process.pid, task: 'slurm 12_3' }), null, 'the same task on this host, its process alive (two processes under one salloc): live');
  writeFileSync(path, 'not json');
  t.throws(() => RunLock.acquire(path), /names no owner/, 'an unknown fresh file is not taken');
});

t.test('the heartbeat touches the lock and notices a takeover', async (t) => {
  const dir = tempDir(t, 'vqvae-lock-');
  const path = join(dir, 'run.lock');
  let lostTo: LockOwner | null | undefined;
  const lock = RunLock.acquire(path, { heartbeatMs: 50, onLost: (by) => (lostTo = by) }) as RunLock;
  const old = new Date(Date.now() - 60_000);
  utimesSync(path, old, old);
  await new Promise((r) => setTimeout(r, 200));
  t.ok(Date.now() - statSync(path).mtimeMs < 5_000, 'touched');
  writeFileSync(path, JSON.stringify(owner({ host: 'node17', token: 'new-owner' })));
  await new Promise((r) => setTimeout(r, 200));
  t.match(lostTo, { token: 'new-owner' }, 'onLost names the new owner');
  lock.release();
  t.ok(existsSync(path), "the new owner's lock stays");
});

t.test('processes racing for a lock: exactly one wins, fresh or stale', async (t) => {
  const dir = tempDir(t, 'vqvae-lock-');
  const race = async (path: string): Promise<string[]> => {
    const code = `
      import { RunLock } from './train/runlock.ts';
      const start = Number(process.argv[1]);
      while (Date.now() < start) {}
      const l = RunLock.acquire(${JSON.stringify(path)});
      console.log(l instanceof RunLock ? 'won' : 'held');
      setTimeout(() => {}, 1500);`;
    const start = Date.now() + 1500;
    const runs = Array.from({ length: 4 }, () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, String(start)], { cwd: REPO });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('error', reject);
        p.on('exit', () => resolve(out.trim()));
      }),
    );
    return Promise.all(runs);
  };
  const fresh = await race(join(dir, 'fresh.lock'));
  t.same(fresh.sort(), ['held', 'held', 'held', 'won'], `fresh lock: ${fresh.join(', ')}`);
  const stalePath = join(dir, 'stale.lock');
  writeFileSync(stalePath, JSON.stringify(owner({ pid: deadPid() })));
  const stale = await race(stalePath);
  t.same(stale.sort(), ['held', 'held', 'held', 'won'], `stale lock: ${stale.join(', ')}`);
});
