// PyTorch side by side (test/torch/vqvae_ref.py; torch from Debian's python3-torch in CI):
// - .pt files written by PyTorch (the torch installed here, 1.13 on Debian 12; and 2.13, the
//   newest available, through the committed files of test/torch/fixtures/torch-2.13/) load -
//   state_dict, whole training checkpoint, float16 - and reproduce PyTorch's reconstruction
//   within 1e-5; a pickled nn.Module and a legacy-format file are refused;
// - our checkpoint under the seed repository's names loads into the seed's module tree with
//   load_state_dict(strict=True) and computes what we compute;
// - training: from one initial state and one fixed set of batches, 10 Adam steps of the seed
//   model in PyTorch and here give the same step-1 loss (relative 1e-6) and the same losses
//   until the first code assignment flips.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu } from './helpers.js';
import { backward, noGrad } from '../engine/autograd.js';
import { Adam } from '../engine/optim.js';
import { tensor, tidy } from '../engine/tensor.js';
import { encodeCheckpoint } from '../model/checkpoint.js';
import { modelFromCheckpoint } from '../model/checkpoint_files.js';
import { VqVae } from '../model/vqvae.js';
import { getImages, syntheticDataset } from '../train/data/dataset.js';
import { TORCH_DIR, type TorchPython, runPython, torchPython, torchTest } from './torch/python.js';

await gpu(t);
const dir = mkdtempSync(join(tmpdir(), 'vq-torch-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const REF = join(TORCH_DIR, 'vqvae_ref.py');
if (torchPython) t.comment(`PyTorch ${torchPython.version} (${torchPython.python})`);

/** vqvae_ref.py's fixed_input: integer arithmetic only, so both sides build the same images. */
function fixedInput(n: number): Float32Array {
  return Float32Array.from({ length: n * 3 * 64 * 64 }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
}

async function reconstruct(model: VqVae, x: Float32Array): Promise<Float32Array> {
  const n = x.length / (3 * 64 * 64);
  const y = tidy(() => noGrad(() => model.forward(tensor(x, [n, 3, 64, 64]), { train: false }).xHat));
  const out = (await y.read()) as Float32Array;
  y.dispose();
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The .pt files of one torch version: they load and reproduce its reconstruction. */
async function checkPtFiles(t: Test, folder: string, version: string): Promise<void> {
  const want = new Float32Array(readFileSync(join(folder, 'xhat.f32')).buffer.slice(0));
  for (const file of ['state_dict.pt', 'checkpoint.pt']) {
    const notes: string[] = [];
    const { model, info } = await modelFromCheckpoint(join(folder, file), { onWarning: (m) => notes.push(m) });
    t.match(info, { names: 'seed', format: 'pt', key: file === 'checkpoint.pt' ? 'model' : null }, `torch ${version} ${file}: the seed's names${file === 'checkpoint.pt' ? ", under key 'model'" : ''}`);
    if (file === 'checkpoint.pt') t.match(notes.join('\n'), /a whole training checkpoint; reading the model state_dict under its key 'model'/);
    const diff = maxAbsDiff(await reconstruct(model, fixedInput(1)), want);
    t.ok(diff <= 1e-5, `torch ${version} ${file}: max |ours - torch| = ${diff.toExponential(2)} <= 1e-5`);
    t.comment(`torch ${version} ${file}: reconstruction max |ours - torch| = ${diff.toExponential(2)}`);
    model.dispose();
  }
}

t.test('.pt files written by PyTorch 2.13 (committed) load and reproduce its reconstruction within 1e-5', async (t) => {
  const folder = join(TORCH_DIR, 'fixtures', 'torch-2.13');
  const version = readFileSync(join(folder, 'version'), 'utf8').trim();
  t.match(version, /^2\.13/);
  await checkPtFiles(t, folder, version);
});

torchTest(t, '.pt files written by the installed PyTorch load and reproduce its reconstruction within 1e-5; modules and legacy files are refused', async (t: Test, py: TorchPython) => {
  const folder = join(dir, 'pt');
  runPython(py, ['-c', `import os; os.makedirs(${JSON.stringify(folder)})`]);
  runPython(py, [REF, 'pt-files', folder]); // the seed model at full size
  await checkPtFiles(t, folder, py.version);
  const notes: string[] = [];
  const { model } = await modelFromCheckpoint(join(folder, 'half.pt'), { onWarning: (m) => notes.push(m) });
  t.match(notes.join('\n'), /23 float16 tensors converted to float32/, 'float16: converted with a warning');
  const diff = maxAbsDiff(await reconstruct(model, fixedInput(1)), new Float32Array(readFileSync(join(folder, 'xhat.f32')).buffer.slice(0)));
  t.ok(diff < 0.05, `float16 weights: reconstruction within the rounding of float16 (${diff.toExponential(2)})`);
  model.dispose();
  await t.rejects(modelFromCheckpoint(join(folder, 'module.pt')), /refused global '__main__\.SeedModel': a pickled nn\.Module \(torch\.save\(model\)\): save model\.state_dict\(\) instead/);
  await t.rejects(modelFromCheckpoint(join(folder, 'legacy.pt')), /legacy torch\.save format/);
});

torchTest(t, "our checkpoint under the seed's names loads into the seed's module tree (strict) and computes what we compute", async (t: Test, py: TorchPython) => {
  const m = new VqVae({ hidden: 32, residualHidden: 8, codebookSize: 32, embeddingDim: 16 }, { seed: 4 });
  const path = join(dir, 'ours-seed.safetensors');
  writeFileSync(path, (await encodeCheckpoint(m, { step: 0, names: 'seed' })).model);
  const inp = join(dir, 'x.bin');
  const x = fixedInput(2);
  writeFileSync(inp, x);
  const out = join(dir, 'y.bin');
  runPython(py, [REF, 'forward', path, inp, out, '32', '16', '32', '8', '2']);
  const theirs = new Float32Array(readFileSync(out).buffer.slice(0, x.length * 4));
  const diff = maxAbsDiff(await reconstruct(m, x), theirs);
  t.ok(diff <= 1e-5, `seed tree: max |ours - torch| = ${diff.toExponential(2)}`);
  m.dispose();
});

torchTest(t, 'side by side: 10 Adam steps of the seed model from one state on one set of batches', async (t: Test, py: TorchPython) => {
  const steps = 10;
  const batch = 4;
  const lr = 1e-3;
  const beta = 1.25;
  const model = new VqVae({}, { seed: 1 }); // the seed's model: 694,851 parameters
  const init = join(dir, 'init.safetensors');
  writeFileSync(init, (await encodeCheckpoint(model, { step: 0 })).model);
  const ds = syntheticDataset({ seed: 3, train: steps * batch, valid: 1, test: 1 });
  const images = getImages(ds, 'train', steps * batch);
  const batches = join(dir, 'batches.bin');
  writeFileSync(batches, images);
  const out = join(dir, 'torch-steps.json');
  runPython(py, [REF, 'train', init, batches, out, String(steps), String(lr), String(beta)]);
  const theirs = JSON.parse(readFileSync(out, 'utf8')) as { torch: string; steps: { loss: number; recon: number; codes: number[] }[] };

  const opt = new Adam(model.parameters(), { lr });
  const ours: { loss: number; recon: number; codes: Uint32Array }[] = [];
  for (let s = 0; s < steps; s++) {
    const x = images.subarray(s * batch * 3 * 64 * 64, (s + 1) * batch * 3 * 64 * 64);
    const [loss, recon, codes] = tidy(() => {
      const o = model.forward(tensor(x, [batch, 3, 64, 64]), { train: true });
      backward(o.loss);
      return [o.loss.detach(), o.recon.detach(), o.indices.detach()];
    });
    opt.step();
    opt.zeroGrad();
    ours.push({ loss: ((await loss.read()) as Float32Array)[0], recon: ((await recon.read()) as Float32Array)[0], codes: (await codes.read()) as Uint32Array });
    for (const y of [loss, recon, codes]) y.dispose();
  }
  opt.dispose();
  model.dispose();

  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  const flip = ours.findIndex((o, s) => o.codes.some((c, i) => c !== theirs.steps[s].codes[i]));
  const lines = ours.map((o, s) => {
    const th = theirs.steps[s];
    const changed = o.codes.reduce((n, c, i) => n + (c !== th.codes[i] ? 1 : 0), 0);
    return `step ${s + 1}: loss ours ${o.loss.toPrecision(9)} torch ${th.loss.toPrecision(9)} (rel ${rel(o.loss, th.loss).toExponential(2)}), codes differing ${changed}/${o.codes.length}`;
  });
  t.comment(`torch ${theirs.torch}, batch ${batch}, lr ${lr}, beta ${beta}:\n${lines.join('\n')}`);
  t.ok(rel(ours[0].loss, theirs.steps[0].loss) <= 1e-6, `step-1 loss: relative difference ${rel(ours[0].loss, theirs.steps[0].loss).toExponential(2)} <= 1e-6`);
  const same = flip < 0 ? steps : flip;
  t.ok(same >= 2, `code assignments agree for ${same} steps before the first flip`);
  // Until a code flips both runs apply the same updates up to float32 rounding (summation
  // orders differ), which Adam's normalised steps carry forward: equal losses to 1e-5 relative.
  for (let s = 0; s < same; s++) {
    const r = rel(ours[s].loss, theirs.steps[s].loss);
    t.ok(r <= 1e-5, `step ${s + 1}: loss relative difference ${r.toExponential(2)} (no code has flipped yet)`);
  }
});
