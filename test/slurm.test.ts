// The sweep under a real SLURM: a one-node cluster from Debian's packages (test/slurm_cluster.ts;
// scripts/setup-slurm.sh installs them when absent), a 4-setting tiny sweep submitted with
// `npm run sweep -- --submit slurm` (2 tasks at once), one task cancelled mid-run (scancel) and
// one requeued mid-run (scontrol requeue), then the same command submitted again. Checked:
// every run finished once, the stopped ones resumed from their checkpoints (not step 0), the
// first merge named the unfinished run, and the last summary lists all 4 with the run folders'
// metrics. Without the packages (or root) it skips with the reason; under CI=true it fails.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { readMetrics } from '../train/metrics.js';
import { expandGrid } from '../train/sweep.js';
import { SlurmCluster, missingSlurmPrograms } from './slurm_cluster.js';

const REPO = join(import.meta.dirname, '..');

function unavailable(): string | null {
  if (process.platform !== 'linux') return 'SLURM runs on Linux only';
  if (process.getuid?.() !== 0) return 'the test runs its SLURM daemons as root (as CI does); run it as root';
  if (missingSlurmPrograms().length) {
    const r = spawnSync('bash', [join(REPO, 'scripts/setup-slurm.sh')], { encoding: 'utf8' });
    const missing = missingSlurmPrograms();
    if (missing.length) return `${missing.join(', ')} not installed (scripts/setup-slurm.sh: ${(r.stdout + r.stderr).trim().split('\n').pop()})`;
  }
  return null;
}

const reason = unavailable();
if (reason && process.env.CI === 'true') t.fail(`CI must run the SLURM test: ${reason}`);

const GRID = { codebookSize: [8, 16], beta: [1.25], lr: [3e-3, 1e-3] };
const STEPS = 120;
/** Stop a task once its run has a checkpoint at this step or later. */
const STOP_AT = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a 4-setting sweep on SLURM: cancel and requeue mid-run, resubmit, merge', { skip: reason ?? false }, async (t) => {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'vqvae-slurm-'));
  let cluster: SlurmCluster | null = null;
  t.teardown(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  cluster = await SlurmCluster.start(join(dir, 'cluster'), { cpus: 2 });
  const timeline: string[] = [];
  const mark = (what: string) => {
    const line = `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${what}`;
    timeline.push(line);
    t.comment(line);
  };
  mark('cluster up (munged, slurmctld, slurmd; 1 node, 2 CPUs)');

  const sweep = join(dir, 'sweep');
  const names = expandGrid(GRID).map((s) => s.name); // task i runs names[i]
  const runDir = (i: number) => join(sweep, names[i]);
  const command = [
    '--import', 'tsx', 'scripts/sweep.ts', '--submit', 'slurm', `--out=${sweep}`,
    '--codebook-size=8,16', '--beta=1.25', '--lr=3e-3,1e-3',
    '--hidden=16', '--residual-hidden=8', '--embedding-dim=8', '--batch-size=4', `--steps=${STEPS}`,
    '--log-every=10', '--val-every=60', '--val-images=8', '--checkpoint-every=10', '--grid-every=1000', '--eval-images=8',
    '--at-once=2', '--gpus=0', '--cpus=1', '--job-name=vqtest',
  ];
  // the jobs inherit this environment (sbatch exports it): a person's shell, not tap's
  const env = Object.fromEntries(Object.entries(cluster.env).filter(([k]) => !/^(TAP|_TAPJS)/.test(k)));
  const submit = (): { array: string; summary: string } => {
    const out = execFileSync(process.execPath, command, { cwd: REPO, env, encoding: 'utf8' });
    const m = /submitted array job (\d+) .* and summary job (\d+)/.exec(out);
    if (!m) throw new Error(`no job ids in: ${out}`);
    return { array: m[1], summary: m[2] };
  };
  const latestStep = (i: number): number => {
    try {
      return (JSON.parse(readFileSync(join(runDir(i), 'checkpoints', 'latest.json'), 'utf8')) as { step: number }).step;
    } catch {
      return 0;
    }
  };
  const state = (id: string) => cluster.job(id)?.JobState ?? 'gone';
  const waitFor = async (what: string, ok: () => boolean, timeoutMs = 180_000) => {
    const start = Date.now();
    while (!ok()) {
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  const taskLog = (array: string, i: number) => readFileSync(join(sweep, 'logs', `vqtest-${array}_${i}.out`), 'utf8');

  try {
    // ---- first submission: cancel task 0 and requeue task 1 once each has a checkpoint
    const first = submit();
    mark(`submitted array job ${first.array} (4 tasks, 2 at once) and summary job ${first.summary} (afterany)`);
    let cancelled = false;
    let requeued = false;
    await waitFor('tasks 0 and 1 to reach a checkpoint', () => {
      for (const i of [0, 1]) {
        const st = state(`${first.array}_${i}`);
        if (!(i === 0 ? cancelled : requeued) && st !== 'RUNNING' && st !== 'PENDING') throw new Error(`task ${i} ended (${st}) before it could be stopped: raise STEPS`);
      }
      if (!cancelled && latestStep(0) >= STOP_AT) {
        cluster.cmd('scancel', [`${first.array}_0`]);
        cancelled = true;
        mark(`scancel ${first.array}_0 (${names[0]} has its checkpoint at step ${latestStep(0)})`);
      }
      if (!requeued && latestStep(1) >= STOP_AT) {
        cluster.cmd('scontrol', ['requeue', `${first.array}_1`]);
        requeued = true;
        mark(`scontrol requeue ${first.array}_1 (${names[1]} has its checkpoint at step ${latestStep(1)})`);
      }
      return cancelled && requeued;
    });
    // a requeued job waits (BeginTime) before it may start again; a test need not
    await waitFor('the requeued task to be pending', () => state(`${first.array}_1`) === 'PENDING');
    cluster.cmd('scontrol', ['update', `JobId=${first.array}_1`, 'StartTime=now']);
    mark(`requeued task ${first.array}_1 pending; released (StartTime=now)`);
    const status = (i: number) => JSON.parse(readFileSync(join(runDir(i), 'status.json'), 'utf8')) as { state: string; step: number };
    // SLURM may call the job cancelled while its process still saves
    await waitFor('task 0 to save and stop', () => status(0).state !== 'running' && !existsSync(`${runDir(0)}.lock`));
    const stopped0 = status(0);
    mark(`task ${first.array}_0 ${state(`${first.array}_0`)}, exit ${cluster.job(`${first.array}_0`)?.ExitCode}: ${names[0]} ${stopped0.state} at step ${stopped0.step}`);
    await waitFor('the first summary job', () => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(state(first.summary)));
    mark(`summary job ${first.summary} ${state(first.summary)}`);

    t.equal(state(`${first.array}_0`), 'CANCELLED', 'scancel cancelled task 0');
    t.equal(stopped0.state, 'interrupted', 'its run saved a checkpoint and stopped on SIGTERM');
    t.ok(stopped0.step >= STOP_AT && stopped0.step < STEPS, `stopped mid-run, at step ${stopped0.step}`);
    t.match(taskLog(first.array, 0), /SIGTERM: finishing the current step, saving/, 'the SIGTERM reached Node (exec)');
    const requeuedJob = cluster.job(`${first.array}_1`)!;
    t.match(requeuedJob, { JobState: 'COMPLETED', Restarts: '1' }, 'the requeued task ran again and completed');
    t.match(taskLog(first.array, 1), /restart 0[\s\S]*DUE TO JOB REQUEUE[\s\S]*restart 1[\s\S]*resuming/, 'its log holds both runs; the second resumed');
    t.equal(state(first.summary), 'COMPLETED', 'the first merge ran after the array ended');
    const firstMd = readFileSync(join(sweep, 'summary.md'), 'utf8');
    t.match(firstMd, /4 runs \(3 finished of 4 settings\)/);
    t.match(firstMd, new RegExp(`## Not finished\\n\\n- ${names[0]}: interrupted at step ${stopped0.step}/${STEPS}`), 'the first merge names the stopped run');
    t.match(readFileSync(join(sweep, 'logs', `vqtest-summary-${first.summary}.out`), 'utf8'), new RegExp(`not finished: ${names[0]} \\(interrupted at step ${stopped0.step}/${STEPS}\\)`));

    // ---- the same command again: task 0 resumes, the others find their runs finished
    const second = submit();
    mark(`resubmitted: array job ${second.array}, summary job ${second.summary}`);
    await waitFor('task 0 of the resubmission to resume', () => existsSync(join(sweep, 'logs', `vqtest-${second.array}_0.out`)) && /resuming/.test(taskLog(second.array, 0)));
    mark(`task ${second.array}_0 resumes ${names[0]} at step ${stopped0.step}`);
    await waitFor('the second summary job', () => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(state(second.summary)));
    mark(`summary job ${second.summary} ${state(second.summary)}: merged`);

    t.equal(state(second.summary), 'COMPLETED');
    for (let i = 1; i < 4; i++) t.match(taskLog(second.array, i), `${names[i]}: already finished, skipped`, `task ${i} skips its finished run`);
    t.match(taskLog(second.array, 0), `${names[0]}: resuming`);

    // ---- every run finished once; the stopped ones resumed from their checkpoints
    for (const [i, name] of names.entries()) {
      const log = readFileSync(join(runDir(i), 'log.txt'), 'utf8');
      t.equal(log.match(/^run \S+/gm)?.length, 1, `${name}: started once`);
      t.equal(log.match(new RegExp(`^finished ${STEPS} steps`, 'gm'))?.length, 1, `${name}: finished once`);
      const resumes = [...log.matchAll(/^resuming \S+ at step (\d+)\//gm)].map((m) => Number(m[1]));
      if (i === 0) t.same(resumes, [stopped0.step], `${name}: resumed once, from its checkpoint at step ${stopped0.step}`);
      else if (i === 1) t.ok(resumes.length === 1 && resumes[0] >= STOP_AT, `${name}: resumed once after the requeue, at step ${resumes[0]}`);
      else t.same(resumes, [], `${name}: never stopped`);
      const steps = readMetrics(join(runDir(i), 'metrics.jsonl')).filter((r) => r.split === 'train').map((r) => r.step);
      t.ok(steps.every((s, k) => k === 0 || s > steps[k - 1]) && steps.at(-1) === STEPS, `${name}: one train row per logged step, up to ${STEPS}`);
      t.notOk(existsSync(`${runDir(i)}.lock`), `${name}: its lock was released`);
    }

    // ---- the summary lists all 4 with the run folders' metrics
    const [header, ...rows] = readFileSync(join(sweep, 'summary.csv'), 'utf8').trim().split('\n');
    const cols = header.split(',');
    t.equal(rows.length, 4);
    const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
    for (const line of rows) {
      const row = Object.fromEntries(line.split(',').map((v, k) => [cols[k], v]));
      const i = names.indexOf(row.name);
      t.ok(i >= 0, `${row.name} is a setting`);
      const metrics = readMetrics(join(runDir(i), 'metrics.jsonl'));
      const train = metrics.filter((r) => r.split === 'train');
      const valid = metrics.filter((r) => r.split === 'valid');
      const ev = JSON.parse(readFileSync(join(runDir(i), 'eval.json'), 'utf8'));
      t.match(row, { state: 'finished', step: String(STEPS), steps: String(STEPS) });
      t.ok(
        close(Number(row.train_loss), train.at(-1)!.loss) &&
          close(Number(row.best_valid_loss), Math.min(...valid.map((r) => r.loss))) &&
          close(Number(row.eval_psnr), ev.psnr) &&
          close(Number(row.eval_recon_mse), ev.recon_mse),
        `${row.name}: train loss, best valid loss, eval PSNR and MSE equal its run folder's`,
      );
    }
    const md = readFileSync(join(sweep, 'summary.md'), 'utf8');
    t.match(md, /4 runs \(4 finished of 4 settings\)/);
    t.notMatch(md, /Not finished|Missing/);
    t.ok(readdirSync(join(sweep, 'figures')).length > 0, 'figures merged');

    // ---- for the record: the timeline and the files the sweep produced
    const files: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d).sort()) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(`${relative(sweep, p)} (${statSync(p).size} B)`);
      }
    };
    walk(sweep);
    t.comment(`timeline:\n${timeline.join('\n')}`);
    t.comment(`files under the sweep folder:\n${files.join('\n')}`);
  } catch (e) {
    // what the tasks printed says why
    const logs = join(sweep, 'logs');
    if (existsSync(logs)) for (const f of readdirSync(logs)) t.comment(`--- ${f}\n${readFileSync(join(logs, f), 'utf8').split('\n').slice(-20).join('\n')}`);
    throw e;
  }
});
