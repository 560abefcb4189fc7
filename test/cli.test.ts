// The command-line tools as a PyTorch user meets them: every one answers --help; a preset is
// chosen once and each flag replaces only its own value (the banner says which values came
// from flags); train --init-from starts from a .pt state_dict under the seed repository's
// names and --names picks the names checkpoints are saved under; a cold start says that
// kernels are compiling; Dawn's two "artificially reduced" lines do not reach the terminal.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu } from './helpers.js';
import { initFromCheckpointBytes } from '../model/checkpoint.js';
import { toScheme } from '../model/names.js';
import { decodeSafetensors } from '../model/safetensors.js';
import { VqVae } from '../model/vqvae.js';
import { NoiseFilter } from '../scripts/cli.js';
import { StepClock } from '../train/progress.js';
import { Pickle, f32Bytes, parameter, ptArchive } from './pt_build.js';

const dir = mkdtempSync(join(tmpdir(), 'vq-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const run = (script: string, args: string[], timeout = 300_000) =>
  spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { encoding: 'utf8', timeout, env: { ...process.env, VQ_DATA: '' } });

const tiny = { hidden: 16, residualHidden: 8, codebookSize: 16, embeddingDim: 8 };

/** A model's state_dict as a torch.save file under the seed repository's names (built here, no torch). */
async function seedPt(m: VqVae): Promise<Uint8Array> {
  const p = new Pickle().proto().orderedDict().mark();
  const storages: Record<string, Uint8Array> = {};
  let k = 0;
  for (const [name, tensor] of m.state) {
    const key = String(k++);
    storages[key] = f32Bytes((await tensor.read()) as Float32Array);
    p.str(toScheme(name, 'seed'));
    parameter(p, { key, numel: tensor.size, size: [...tensor.shape] });
  }
  return ptArchive(p.setitems().stop().done(), storages, { prefix: 'model' });
}

t.test('the Dawn lines are filtered out; everything else passes at once, progress bars included', async (t) => {
  const out: string[] = [];
  const f = new NoiseFilter((s) => out.push(s));
  f.push('Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\nWarn');
  f.push('ing: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n');
  f.push('\r 10%|#   | 1/10 [00:01<00:09]');
  t.same(out, ['\r 10%|#   | 1/10 [00:01<00:09]'], 'a bar without a newline passes at once');
  f.push('\nWarning: something else\nreal error');
  f.end();
  t.same(out.join(''), '\r 10%|#   | 1/10 [00:01<00:09]\nWarning: something else\nreal error', 'other warnings are kept');
});

t.test('the step clock: no rate (so no ETA) while a cold start compiles, notes while it does', async (t) => {
  const rt = { pipelineCount: 0, onCompile: null as ((kernel: string) => void) | null };
  const notes: string[] = [];
  const clock = new StepClock(rt, (l) => notes.push(l), 20);
  const step = async (compiles: number, ms: number) => {
    clock.beforeStep();
    for (let i = 0; i < compiles; i++) {
      rt.onCompile!('k');
      rt.pipelineCount++;
    }
    await new Promise((r) => setTimeout(r, ms));
    clock.afterStep();
  };
  await step(3, 50); // compiles
  t.equal(clock.rate, 0);
  t.ok(clock.compiling! > 0, 'the bar shows compiling time instead of an ETA');
  t.match(notes[0], /^compiling GPU kernels \(a cold start/);
  await step(0, 50); // waits for the compiled step's GPU work: not timed either
  t.equal(clock.rate, 0);
  await step(0, 5);
  t.equal(clock.rate, 0, 'one warm step: no rate yet');
  t.match(notes.at(-1)!, /^kernels compiled: the first steps took \d\d:\d\d; the ETA counts from here$/);
  await step(0, 5);
  t.ok(clock.rate > 50, `warm steps only: ${clock.rate.toFixed(0)} steps/s`);
  t.equal(clock.compiling, undefined);
  const n = notes.length;
  await step(2, 5); // a later compile (validation's kernels): no notes
  t.equal(notes.length, n);
  t.ok(notes.some((l) => /^still compiling GPU kernels: \d+ so far, 00:00$/.test(l)), 'a note every few seconds while cold');
  clock.close();
  t.equal(rt.onCompile, null);
});

t.test('every command answers --help', async (t) => {
  const scripts: [string, RegExp][] = [
    ['scripts/train.ts', /Usage: npm run train/],
    ['scripts/eval.ts', /Usage: npm run eval/],
    ['scripts/prior.ts', /npm run prior -- runs\/<name>/],
    ['scripts/sample.ts', /Usage: npm run sample/],
    ['scripts/convert.ts', /Usage: npm run convert/],
    ['scripts/sweep.ts', /Usage: npm run sweep/],
    ['scripts/prepare-data.ts', /prepare-data/],
    ['scripts/generate.ts', /Usage: npm run generate/],
    ['bench/run.ts', /Usage: npm run bench/],
  ];
  for (const [script, re] of scripts) {
    const r = run(script, ['--help'], 60_000);
    t.equal(r.status, 0, `${script} --help exits 0 ${r.stderr.slice(-300)}`);
    t.match(r.stdout + r.stderr, re, `${script} --help prints its usage`);
  }
});

t.test('initFromCheckpointBytes: weights only; an EMA model restarts its averages from the loaded codebook', async (t) => {
  await gpu(t);
  const src = new VqVae(tiny, { seed: 11 });
  const bytes = await seedPt(src);
  const dst = new VqVae({ ...tiny, ema: true }, { seed: 12 });
  const info = await initFromCheckpointBytes(bytes, dst, { source: 'seed.pt' });
  t.match(info, { names: 'seed', format: 'pt', step: 0 });
  for (const [n, p] of src.state) t.same([...((await dst.state.get(n)!.read()) as Float32Array)], [...((await p.read()) as Float32Array)], n);
  t.equal(dst.ema!.step, 0);
  const wrong = new VqVae({ ...tiny, hidden: 32 });
  await t.rejects(initFromCheckpointBytes(bytes, wrong, { source: 'seed.pt' }), /seed\.pt: 'encoder\.conv1\.weight' has shape \[8, 3, 4, 4\], the model needs \[16, 3, 4, 4\]/);
  for (const m of [src, dst, wrong]) m.dispose();
});

t.test('train --init-from a seed-named .pt, --steps on a CPU device keeps the quick preset, --names; prior likewise', async (t) => {
  const r0 = await gpu(t);
  const src = new VqVae(tiny, { seed: 5 });
  const pt = join(dir, 'seed-model.pt');
  writeFileSync(pt, await seedPt(src));
  src.dispose();
  const common = ['--runs-dir', dir, '--steps', '3', '--log-every', '1', '--val-every', '3', '--val-images', '8', '--eval-images', '8', '--progress', 'lines'];
  const r = run('scripts/train.ts', ['--name', 'a', '--init-from', pt, ...common]);
  t.equal(r.status, 0, `train exits 0: ${r.stderr.slice(-800)}`);
  const out = r.stdout;
  if (r0.caps.isCpu) {
    t.match(out, /^preset quick \(chosen for the CPU device .*; --preset seed for the seed's settings\): batch-size 8, lr 2e-3, lr-schedule cosine, ema true, sampling shuffle$/m, 'the quick preset, from the device');
  }
  t.match(out, /^from flags: --name a, --runs-dir .*, --steps 3, --init-from .*seed-model\.pt, --log-every 1/m, 'the values from flags');
  t.match(out, /^from --init-from .*seed-model\.pt: hidden 16, residual-hidden 8, residual-blocks 2, codebook-size 16, embedding-dim 8$/m, 'the sizes from the file');
  t.match(out, /initial weights from .*seed-model\.pt \(torch\.save file, seed names\); step 0, fresh Adam/);
  t.match(out, /training: 3 steps, batch 8/, '--steps 40 is 40 steps of the quick preset, not the seed preset');
  t.match(out, /compiling GPU kernels \(a cold start; later steps reuse them\) \.\.\.\n[^]*step 1\/3 .* eta compiling kernels \d\d:\d\d\n[^]*kernels compiled: the first steps took \d\d:\d\d; the ETA counts from here/, 'a cold start says it is compiling, not an ETA');
  t.notMatch(r.stderr + out, /artificially reduced/, "Dawn's limit lines are gone");
  const saved = decodeSafetensors(new Uint8Array(readFileSync(join(dir, 'a', 'checkpoints', 'best.safetensors'))));
  t.ok(saved.tensors.has('encoder.residual.layers.0.res_block.1.weight'), 'saved under the seed names by default');
  t.equal(saved.metadata['vqvae.names'], 'seed');

  const z = run('scripts/train.ts', ['--name', 'b', '--names', 'zalando', '--preset', 'quick', '--hidden', '16', '--residual-hidden', '8', '-K', '16', '-D', '8', ...common]);
  t.equal(z.status, 0, `train --names zalando exits 0: ${z.stderr.slice(-800)}`);
  t.match(z.stdout, /^preset quick \(from --preset\)/m);
  const zs = decodeSafetensors(new Uint8Array(readFileSync(join(dir, 'b', 'checkpoints', 'best.safetensors'))));
  t.ok(zs.tensors.has('_encoder._residual_stack._layers.0._block.1.weight'), '--names zalando');

  // eval reads a .pt directly
  const e = run('scripts/eval.ts', [join(dir, 'a'), '--checkpoint', pt, '--images', '8', '--json']);
  t.equal(e.status, 0, `eval --checkpoint file.pt: ${e.stderr.slice(-500)}`);
  t.match(JSON.parse(e.stdout), { images: 8 });

  // the prior: --steps keeps the device's preset
  const p = run('scripts/prior.ts', [join(dir, 'a'), '--steps', '2', '--train-images', '16', '--valid-images', '8', '--log-every', '1', '--progress', 'lines']);
  t.equal(p.status, 0, `prior exits 0: ${p.stderr.slice(-800)}`);
  if (r0.caps.isCpu) t.match(p.stdout, /^preset cpu \(chosen for the CPU device .*\): width 32, layers 3, batch-size 8, lr 0\.001$/m, 'the cpu preset, from the device');
  t.match(p.stdout, /^from flags: --steps 2, --train-images 16, --valid-images 8, --log-every 1$/m);
  t.notMatch(p.stderr + p.stdout, /artificially reduced/);
});

t.test('a stop signal sent to every process (as SLURM does) counts once: the step finishes, a checkpoint is saved, exit 130', async (t) => {
  const { spawn } = await import('node:child_process');
  const { existsSync, readdirSync } = await import('node:fs');
  const args = ['--import', 'tsx', 'scripts/train.ts', '--runs-dir', dir, '--name', 'sig', '--preset', 'quick', '--hidden', '16', '--residual-hidden', '8', '-K', '16', '-D', '8', '--steps', '100000', '--log-every', '1', '--progress', 'lines'];
  const parent = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VQ_DATA: '' } });
  let stdout = '';
  let stderr = '';
  parent.stdout.on('data', (d) => (stdout += d));
  parent.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => parent.on('close', (code) => resolve(code)));
  const deadline = Date.now() + 240_000;
  while (!/step 3\//.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.match(stdout, /step 3\//, 'training is under way');
  // the relaunched child: the process whose parent is the command's process
  const child = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .find((p) => {
      try {
        return readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(parent.pid);
      } catch {
        return false;
      }
    });
  t.ok(child, 'the work runs in a child process');
  // SLURM signals every process of the step; the parent's forward then reaches the child a moment later
  if (child) process.kill(Number(child), 'SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  parent.kill('SIGTERM');
  const code = await exited;
  t.equal(code, 130, `exit 130 (${stderr.slice(-300)})`);
  t.equal((stderr.match(/SIGTERM: finishing the current step and saving a checkpoint/g) ?? []).length, 1, 'one stop request');
  t.notMatch(stderr, /again: exiting without saving/);
  t.ok(existsSync(join(dir, 'sig', 'checkpoints', 'latest.json')), 'a checkpoint was saved');
});
