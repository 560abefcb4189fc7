// The sweep's job files (train/jobfiles.ts, cluster/): the SLURM array and summary scripts
// (fields, throttle, GPU request, extra sbatch options, valid bash, options that parse back),
// the Kubernetes manifest checked structurally, and its index path run here: each index's
// container command with JOB_COMPLETION_INDEX set, then the merge Job's command (also four
// at once: concurrent merges leave whole files).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { tempDir } from './fixtures.js';
import { parseTrainArgs } from '../train/config.js';
import { type SweepJob, configArgs, groupOptions, k8sManifest, renderTemplate, shellQuote, slurmJobFiles } from '../train/jobfiles.js';

const REPO = join(import.meta.dirname, '..');
const TINY = { hidden: 16, residualHidden: 8, embeddingDim: 8, batchSize: 4, steps: 12, logEvery: 3, valEvery: 6, valImages: 8, checkpointEvery: 6, gridEvery: 100, evalImages: 8 };
const GRID = { codebookSize: [8, 16], beta: [1.25], lr: [3e-3] };

function job(over: Partial<SweepJob> = {}): SweepJob {
  return { dir: '/scratch/me/sweep', grid: { codebookSize: [128, 256, 512], beta: [0.25, 1.25], lr: [1e-3] }, base: { steps: 10000, data: '/data/celeba', ema: false }, tasks: 6, atOnce: 3, gpus: 1, jobName: 'vqvae-sweep', ...over };
}

t.test('templates, quoting, options', async (t) => {
  t.equal(renderTemplate('a={{A}}\n{{B}}\nc', { A: '1', B: '' }), 'a=1\nc', 'a line holding only an empty field is left out');
  t.throws(() => renderTemplate('{{A}} {{C}}', { A: '1' }), /no value for \{\{C\}\}/);
  t.equal(shellQuote('--out=/a/b'), '--out=/a/b');
  t.equal(shellQuote("it's"), `'it'\\''s'`);
  t.same(groupOptions(['--time', '04:00:00', '-p', 'gpu', '--mem=8G']), ['--time 04:00:00', '-p gpu', '--mem=8G']);
  const given = { steps: 12, lr: 3e-3, ema: true, data: null, seed: 7, preset: 'seed' as const, valImages: 0 };
  t.same(parseTrainArgs(configArgs(given)).given, given, 'the options parse back to themselves');
  t.same(parseTrainArgs(configArgs({ ema: false })).given, { ema: false });
});

t.test('SLURM: the array job and its summary job', async (t) => {
  const { sweep, summary } = slurmJobFiles(job(), { repo: '/home/me/vqvae webgpu', node: '/usr/bin/node', cpus: 8, logDir: '/scratch/me/sweep/logs', sbatch: ['--partition=gpu', '--time 04:00:00'] });
  for (const line of [
    '#SBATCH --array=0-5%3',
    '#SBATCH --job-name=vqvae-sweep',
    '#SBATCH --output=/scratch/me/sweep/logs/%x-%A_%a.out',
    '#SBATCH --requeue',
    '#SBATCH --signal=B:TERM@120',
    '#SBATCH --cpus-per-task=8',
    '#SBATCH --gres=gpu:1',
    '#SBATCH --partition=gpu',
    '#SBATCH --time 04:00:00',
    "cd '/home/me/vqvae webgpu'",
  ]) {
    t.ok(sweep.split('\n').includes(line), line);
  }
  t.match(sweep, /^exec \/usr\/bin\/node --import tsx scripts\/sweep\.ts --out=\/scratch\/me\/sweep --codebook-size=128,256,512 --beta=0\.25,1\.25 --lr=0\.001 --data=\/data\/celeba --no-ema --steps=10000 --progress=lines$/m);
  t.notMatch(sweep, /\{\{[A-Z_]+\}\}|^\s*$\n#SBATCH/m, 'every field filled; no blank line before an #SBATCH line (sbatch stops reading them there)');
  t.match(summary, /^#SBATCH --job-name=vqvae-sweep-summary$/m);
  t.match(summary, /^exec \/usr\/bin\/node --import tsx scripts\/sweep\.ts --summary-only --out=\/scratch\/me\/sweep --codebook-size=128,256,512 --beta=0\.25,1\.25 --lr=0\.001$/m);
  t.notMatch(summary, /gres|#SBATCH --array|#SBATCH --dependency/, 'no GPU, no array; the dependency is given at submission');
  for (const [name, text] of [['sweep', sweep], ['summary', summary]]) {
    t.equal(spawnSync('bash', ['-n'], { input: text }).status, 0, `${name}.sbatch is valid bash`);
  }
  const own = slurmJobFiles(job({ gpus: 2 }), { repo: '/r', node: 'node', cpus: 1, logDir: '/l', sbatch: ['--gres=gpu:a100:1'] });
  t.notMatch(own.sweep, /--gres=gpu:2/, "a GPU request among the extra options replaces --gpus'");
  t.notMatch(own.summary, /gres/);
  t.match(slurmJobFiles(job({ gpus: 0 }), { repo: '/r', node: 'node', cpus: 1, logDir: '/l', sbatch: [] }).sweep.split('\n').filter((l) => l.includes('gres')), []);
  t.throws(() => slurmJobFiles(job({ tasks: 7 }), { repo: '/r', node: 'node', cpus: 1, logDir: '/l', sbatch: [] }), /--tasks must be 1\.\.6/);
  t.throws(() => slurmJobFiles(job({ jobName: 'My Sweep' }), { repo: '/r', node: 'node', cpus: 1, logDir: '/l', sbatch: [] }), /--job-name/);
});

t.test('Kubernetes: the Indexed Job and its merge Job; the index path runs here', async (t) => {
  const dir = tempDir(t, 'vqvae-k8s-');
  const manifest = k8sManifest(job({ dir: join(dir, 'sweep'), grid: GRID, base: TINY, tasks: 2, atOnce: 2, gpus: 1 }), { image: 'registry.example.edu/vqvae:1', claim: 'lab-shared', mount: dir, workdir: '/app' });
  const docs = parseAllDocuments(manifest).map((d) => {
    t.same(d.errors, [], 'valid YAML');
    return d.toJS();
  });
  t.equal(docs.length, 2);
  const [sweepJob, mergeJob] = docs;
  t.match(sweepJob, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'vqvae-sweep' },
    spec: {
      completionMode: 'Indexed',
      completions: 2,
      parallelism: 2,
      podReplacementPolicy: 'Failed',
      podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] },
      template: {
        spec: {
          restartPolicy: 'Never',
          containers: [{ image: 'registry.example.edu/vqvae:1', workingDir: '/app', resources: { limits: { 'nvidia.com/gpu': 1 } }, volumeMounts: [{ name: 'shared', mountPath: dir }] }],
          volumes: [{ name: 'shared', persistentVolumeClaim: { claimName: 'lab-shared' } }],
        },
      },
    },
  });
  const container = sweepJob.spec.template.spec.containers[0];
  const env = Object.fromEntries((container.env as { name: string; value?: string }[]).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  t.match(env, { SWEEP_SHARDS: '2', NVIDIA_DRIVER_CAPABILITIES: /graphics/ });
  t.match(container.env, [{}, { name: 'SWEEP_JOB_NAME', valueFrom: { fieldRef: { fieldPath: "metadata.labels['job-name']" } } }]);
  t.match(mergeJob, { kind: 'Job', metadata: { name: 'vqvae-sweep-summary' }, spec: { suspend: true, template: { spec: { restartPolicy: 'Never' } } } });
  const mergeContainer = mergeJob.spec.template.spec.containers[0];
  t.notOk(mergeContainer.resources, 'the merge asks for no GPU');
  t.ok((mergeContainer.command as string[]).includes('--summary-only'));
  t.match(k8sManifest(job({ dir: '/shared/s', gpus: 0 }), { image: 'i', claim: 'c', mount: '/shared', workdir: '/app' }), /resources: \{\}/);
  t.throws(() => k8sManifest(job({ dir: '/scratch/s' }), { image: 'i', claim: 'c', mount: '/shared', workdir: '/app' }), /must be on the shared volume, under --mount \/shared/);

  // the pods' commands, run here: both indexes at once (parallelism 2), then the merge
  const run = (command: string[], extraEnv: Record<string, string>) =>
    new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const p = spawn(command[0] === 'node' ? process.execPath : command[0], command.slice(1), { cwd: REPO, env: { ...process.env, ...extraEnv } });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      p.on('error', reject);
      p.on('exit', (code) => resolve({ code, out }));
    });
  const pods = await Promise.all([0, 1].map((i) => run(container.command, { ...env, SWEEP_JOB_NAME: 'vqvae-sweep', JOB_COMPLETION_INDEX: String(i) })));
  for (const [i, p] of pods.entries()) {
    t.equal(p.code, 0, `index ${i} exits 0`);
    t.match(p.out, `shard ${i}/2 (JOB_COMPLETION_INDEX) runs 1: K${[8, 16][i]}-beta1.25-lr3e-3`, `index ${i} runs its setting`);
  }
  const bad = await run(container.command, { ...env, JOB_COMPLETION_INDEX: '2' });
  t.not(bad.code, 0);
  t.match(bad.out, /shard index 2 is not in 0\.\.1/);
  const merge = await run(mergeContainer.command, {});
  t.equal(merge.code, 0);
  t.match(merge.out, /summary of 2 runs \(2 finished\)/);
  const md = readFileSync(join(dir, 'sweep', 'summary.md'), 'utf8');
  t.match(md, /2 runs \(2 finished of 2 settings\)/);

  // merges at the same time leave whole files (each is written aside and renamed into place)
  const merges = await Promise.all([0, 1, 2, 3].map(() => run(mergeContainer.command, {})));
  t.same(merges.map((m) => m.code), [0, 0, 0, 0]);
  t.equal(readFileSync(join(dir, 'sweep', 'summary.md'), 'utf8'), md, 'summary.md intact');
  t.equal(readFileSync(join(dir, 'sweep', 'summary.csv'), 'utf8').trim().split('\n').length, 3, 'summary.csv intact');
  t.same(readdirSync(join(dir, 'sweep')).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
});

t.test('the command line: --emit and its refusals', async (t) => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'scripts/sweep.ts', ...args], { cwd: REPO, encoding: 'utf8' });
  const slurm = cli('--emit', 'slurm', '--out=/scratch/s', '-K', '8,16', '--beta', '1.25', '--lr', '1e-3', '--at-once', '1', '--', '--partition', 'gpu');
  t.equal(slurm.status, 0, slurm.stderr);
  t.match(slurm.stdout, /# ==> \/scratch\/s\/jobs\/sweep\.sbatch <==[\s\S]*#SBATCH --array=0-1%1[\s\S]*#SBATCH --partition gpu[\s\S]*# ==> \/scratch\/s\/jobs\/summary\.sbatch <==[\s\S]*sbatch --dependency=afterany:/);
  const k8s = cli('--emit', 'k8s', '-K', '8', '--beta', '1.25', '--lr', '1e-3');
  t.equal(k8s.status, 0, k8s.stderr);
  t.match(k8s.stdout, /"--out=\/shared\/sweep"/, 'the default sweep folder is on the volume');
  t.match(cli('--submit', 'pbs').stderr, /--submit takes slurm/);
  t.match(cli('--emit', 'k8s', '--', '--partition=gpu').stderr, /sbatch options: only for --submit slurm or --emit slurm/);
  t.match(cli('--emit', 'slurm', '--shard', '0/2').stderr, /do not apply to --submit\/--emit/);
});
