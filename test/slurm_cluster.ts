// A throwaway one-node SLURM cluster for the SLURM test: Debian's munged, slurmctld and slurmd
// (scripts/setup-slurm.sh installs them), run as root with every file (config, MUNGE key and
// socket, state, spool, logs, pid files) in one temporary folder and ports of their own, so
// that they touch no system SLURM. stop() cancels its jobs and ends only the daemons it started.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';

const SBIN_PATH = `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`;
const PROGRAMS = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'scancel', 'squeue', 'scontrol', 'sinfo'];

function which(program: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The programs of a one-node cluster that are not installed. */
export function missingSlurmPrograms(): string[] {
  return PROGRAMS.filter((p) => which(p) === null);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class SlurmCluster {
  /** The environment for SLURM's commands (SLURM_CONF names this cluster's config). */
  readonly env: NodeJS.ProcessEnv;
  private readonly pidFiles: string[];

  private constructor(
    readonly dir: string,
    readonly conf: string,
  ) {
    this.env = { ...process.env, SLURM_CONF: conf, PATH: SBIN_PATH };
    this.pidFiles = ['slurmd.pid', 'slurmctld.pid', 'munged.pid'].map((f) => join(dir, f));
  }

  /** Starts MUNGE, slurmctld and slurmd in `dir` with one node of `cpus` CPUs; waits until the node is idle. */
  static async start(dir: string, opts: { cpus: number }): Promise<SlurmCluster> {
    for (const d of ['state', 'spool', 'log']) mkdirSync(join(dir, d), { recursive: true });
    const node = hostname().split('.')[0];
    const key = join(dir, 'munge.key');
    writeFileSync(key, randomBytes(1024));
    chmodSync(key, 0o400);
    const socket = join(dir, 'munge.sock');
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    const conf = join(dir, 'slurm.conf');
    writeFileSync(
      conf,
      [
        'ClusterName=vqvae-test',
        `SlurmctldHost=${node}(127.0.0.1)`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${socket}`,
        `StateSaveLocation=${join(dir, 'state')}`,
        `SlurmdSpoolDir=${join(dir, 'spool')}`,
        `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
        `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
        `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
        `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
        // no cgroups: processes are tracked by their parent ids, tasks are not confined
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'SchedulerType=sched/backfill',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core',
        'MpiDefault=none',
        'ReturnToService=2',
        // a cancelled task gets this long after its SIGTERM to save and exit
        'KillWait=30',
        `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${opts.cpus} State=UNKNOWN`,
        'PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
        '',
      ].join('\n'),
    );
    const c = new SlurmCluster(dir, conf);
    try {
      const start = (program: string, args: string[]) => execFileSync(which(program)!, args, { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] });
      start('munged', ['--force', `--socket=${socket}`, `--key-file=${key}`, `--log-file=${join(dir, 'log', 'munged.log')}`, `--pid-file=${join(dir, 'munged.pid')}`, `--seed-file=${join(dir, 'munged.seed')}`]);
      start('slurmctld', ['-f', conf]);
      start('slurmd', ['-f', conf, '-N', node]);
      const t0 = Date.now();
      for (;;) {
        const state = spawnSync('sinfo', ['-h', '-o', '%T'], { env: c.env, encoding: 'utf8' }).stdout?.trim();
        if (state === 'idle') break;
        if (Date.now() - t0 > 30_000) throw new Error(`the node did not come up (sinfo: '${state}')`);
        await sleep(250);
      }
    } catch (e) {
      const logs = ['munged.log', 'slurmctld.log', 'slurmd.log'].map((f) => {
        const p = join(dir, 'log', f);
        return existsSync(p) ? `--- ${f}\n${readFileSync(p, 'utf8').split('\n').slice(-15).join('\n')}` : `--- ${f}: none`;
      });
      await c.stop();
      throw new Error(`starting the SLURM cluster failed: ${(e as Error).message}\n${logs.join('\n')}`);
    }
    return c;
  }

  /** Runs a SLURM command of this cluster; returns its output (throws on failure). */
  cmd(program: string, args: string[]): string {
    return execFileSync(program, args, { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** scontrol show job's fields of a job (or array task, '12_3'), or null once SLURM forgot it. */
  job(id: string): Record<string, string> | null {
    const r = spawnSync('scontrol', ['show', 'job', '--oneliner', id], { env: this.env, encoding: 'utf8' });
    if (r.status !== 0) return null;
    const fields: Record<string, string> = {};
    for (const m of r.stdout.matchAll(/(\w+)=(\S*)/g)) if (!(m[1] in fields)) fields[m[1]] = m[2];
    return fields;
  }

  /** Cancels every job, waits for them to end, then stops the daemons this cluster started. */
  async stop(): Promise<void> {
    if (existsSync(join(this.dir, 'slurmctld.pid'))) {
      spawnSync('scancel', ['--full', `--user=${userInfo().username}`], { env: this.env });
      const t0 = Date.now();
      while (Date.now() - t0 < 40_000) {
        const q = spawnSync('squeue', ['-h'], { env: this.env, encoding: 'utf8' });
        if (q.status !== 0 || q.stdout.trim() === '') break;
        await sleep(500);
      }
    }
    for (const f of this.pidFiles) {
      if (!existsSync(f)) continue;
      const pid = Number(readFileSync(f, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) continue;
      process.kill(pid, 'SIGTERM');
      const t0 = Date.now();
      while (alive(pid) && Date.now() - t0 < 10_000) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
}
