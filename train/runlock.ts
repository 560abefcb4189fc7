// The lock that keeps two sweep tasks from training the same run folder: a file
// <run folder>.lock beside the folder (the trainer may replace a folder that has no checkpoint
// yet, so the lock cannot live inside it) that names its owner: host, process, scheduler task.
//
// Rules:
// - Taking a lock is creating its file whole with link(), which fails when the file exists;
//   link() is atomic on local disks and on NFS, where a sweep folder usually lives.
// - The owner touches the file every heartbeatMs and checks that the lock is still its own.
// - A lock is stale when its process is gone (same host, no such pid), when its owner is an
//   earlier run of the same scheduler task on another host (a requeued SLURM task, a
//   restarted Kubernetes index: the scheduler ended that run before starting this one), or when
//   it has had no heartbeat for staleAfterMs (its node died). A stale lock is taken over; a live
//   one is not.
import { linkSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { tmpPath } from './atomic.js';

export interface LockOwner {
  /** Unique per acquisition: tells this lock from a later one of the same path. */
  token: string;
  host: string;
  pid: number;
  /** The scheduler task this process runs as (see schedulerTask), or null. */
  task: string | null;
  started: string;
}

/**
 * The scheduler task of this process, stable across requeues and restarts: SLURM's array job
 * and task ids (or its job id), or a Kubernetes indexed job's name and completion index.
 */
export function schedulerTask(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.SLURM_ARRAY_JOB_ID && env.SLURM_ARRAY_TASK_ID) return `slurm ${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}`;
  if (env.SLURM_JOB_ID) return `slurm ${env.SLURM_JOB_ID}`;
  if (env.JOB_COMPLETION_INDEX !== undefined) return `k8s ${env.SWEEP_JOB_NAME ?? 'job'}/${env.JOB_COMPLETION_INDEX}`;
  return null;
}

export function describeOwner(o: LockOwner): string {
  return `${o.task ? `${o.task}, ` : ''}pid ${o.pid} on ${o.host} since ${o.started}`;
}

export interface LockOptions {
  /** Default: this process (tests give others). */
  owner?: Omit<LockOwner, 'token' | 'started'>;
  heartbeatMs?: number;
  staleAfterMs?: number;
  /** Called when a heartbeat finds the lock taken over (this process was judged dead). */
  onLost?: (by: LockOwner | null) => void;
}

export const HEARTBEAT_MS = 30_000;
export const STALE_AFTER_MS = 10 * 60_000;

function readOwner(path: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    return typeof o.token === 'string' ? o : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // it exists, under another user
  }
}

/** Why `held` is stale for `me`, or null when it is live. */
export function staleReason(held: LockOwner, heartbeatAgeMs: number, me: Omit<LockOwner, 'token' | 'started'>, staleAfterMs = STALE_AFTER_MS): string | null {
  if (held.host === me.host) {
    // on this host the process table decides (two processes of one job, e.g. under salloc, share a task)
    if (held.pid !== me.pid && !pidAlive(held.pid)) return `its process ${held.pid} on ${held.host} has ended`;
  } else if (held.task !== null && held.task === me.task) {
    return `it is from an earlier run of this task (${held.task}) on ${held.host}, requeued or restarted since`;
  }
  if (heartbeatAgeMs > staleAfterMs) return `it has had no heartbeat for ${Math.round(heartbeatAgeMs / 1000)} s`;
  return null;
}

export class RunLock {
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    readonly path: string,
    readonly owner: LockOwner,
    /** Set when a stale lock was taken over: why it was stale, and whose it was. */
    readonly tookOver: { from: LockOwner; reason: string } | null,
  ) {}

  /** Takes the lock at `path`, or returns who holds it. */
  static acquire(path: string, opts: LockOptions = {}): RunLock | { heldBy: LockOwner } {
    const me = opts.owner ?? { host: hostname(), pid: process.pid, task: schedulerTask() };
    const owner: LockOwner = { ...me, token: randomBytes(8).toString('hex'), started: new Date().toISOString() };
    let tookOver: { from: LockOwner; reason: string } | null = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      const tmp = tmpPath(path);
      writeFileSync(tmp, JSON.stringify(owner, null, 2) + '\n');
      try {
        linkSync(tmp, path);
        const lock = new RunLock(path, owner, tookOver);
        lock.startHeartbeat(opts.heartbeatMs ?? HEARTBEAT_MS, opts.onLost);
        return lock;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        rmSync(tmp, { force: true });
      }
      const held = readOwner(path);
      let age: number;
      try {
        age = Date.now() - statSync(path).mtimeMs;
      } catch {
        continue; // released meanwhile: try again
      }
      if (held === null) {
        // not a lock this code wrote (or an unreadable one): only its age can make it stale
        if (age <= (opts.staleAfterMs ?? STALE_AFTER_MS)) throw new Error(`${path} exists but names no owner; remove it if no task is training this run`);
      } else {
        const reason = staleReason(held, age, me, opts.staleAfterMs);
        if (reason === null) return { heldBy: held };
        tookOver = { from: held, reason };
      }
      // Move the stale lock aside (rename is atomic: one contender wins), and put it back if
      // what moved was not the lock judged stale but a fresh one that replaced it meanwhile.
      const aside = tmpPath(path);
      try {
        renameSync(path, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      if (held !== null && readOwner(aside)?.token !== held.token) {
        try {
          linkSync(aside, path);
        } catch {
          /* a newer lock is in place: it wins */
        }
      }
      rmSync(aside, { force: true });
    }
    const held = readOwner(path);
    if (held) return { heldBy: held };
    throw new Error(`${path}: could not take the lock (it kept changing)`);
  }

  private startHeartbeat(everyMs: number, onLost?: (by: LockOwner | null) => void): void {
    this.timer = setInterval(() => {
      const held = readOwner(this.path);
      if (held?.token !== this.owner.token) {
        this.stopHeartbeat();
        onLost?.(held);
        return;
      }
      const now = new Date();
      try {
        utimesSync(this.path, now, now);
      } catch {
        /* the next beat checks again */
      }
    }, everyMs);
    this.timer.unref();
  }

  private stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Whether the lock file still names this owner. */
  held(): boolean {
    return readOwner(this.path)?.token === this.owner.token;
  }

  /** Removes the lock if it is still this owner's. */
  release(): void {
    this.stopHeartbeat();
    if (this.held()) rmSync(this.path, { force: true });
  }
}
