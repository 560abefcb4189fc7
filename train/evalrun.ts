// Evaluating a run folder's checkpoint on a split (the `npm run eval` command's work).
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PT_EXTENSIONS, checkpointFiles, modelFromCheckpoint, modelPath } from '../model/checkpoint_files.js';
import { type SplitFlag, readRunConfig, validateTrainConfig } from './config.js';
import { openDataset } from './data/index.js';
import { type EvalResult, evaluate } from './evaluate.js';
import { RunFiles, writeJsonAtomic } from './runfiles.js';
import { dataConfig, formatEval } from './trainer.js';

export interface EvaluateRunOptions {
  split?: SplitFlag;
  /** 'latest' (default), 'best', or a checkpoint path (with or without .safetensors; or a PyTorch .pt / .pth file). */
  checkpoint?: string;
  /** Only the first N images of the split (0 / undefined: all). */
  images?: number;
  batchSize?: number;
  /** JSON output path (default <run>/eval-<split>-<checkpoint>.json; the PNG goes beside it). */
  out?: string;
  print?: (line: string) => void;
}

export function evalHelp(): string {
  return [
    'Usage: npm run eval -- RUN_DIR [options]',
    '',
    "Evaluates a run's checkpoint over a whole split: reconstruction MSE, PSNR, loss terms,",
    'perplexity (of the whole split and per batch) and codebook usage. Writes',
    'RUN_DIR/eval-<split>-<checkpoint>.json and a PNG of originals over reconstructions, and',
    'prints a table.',
    '',
    'Options:',
    '  -s, --split S         train, valid or test (default test)',
    '      --checkpoint C    latest (default), best, or a checkpoint path: ours, or a PyTorch',
    '                        state_dict (.safetensors, .pt or .pth; seed or zalando names)',
    '      --images N        only the first N images of the split',
    "  -b, --batch-size N    evaluation batch size (default: the run's)",
    '  -o, --out FILE        JSON output path',
    '      --json            print the JSON instead of the table',
    '  -h, --help            this text',
  ].join('\n');
}

function resolveCheckpoint(files: RunFiles, which: string): { base: string; label: string } {
  if (which === 'latest') {
    const l = files.latest();
    if (!l) throw new Error(`${files.dir}: no checkpoint yet`);
    return { base: l.base, label: `step${l.step}` };
  }
  if (which === 'best') {
    if (!existsSync(modelPath(files.best))) throw new Error(`${files.dir}: no best checkpoint (no validation ran yet)`);
    return { base: files.best, label: 'best' };
  }
  const file = checkpointFiles(which).model;
  if (!existsSync(file)) throw new Error(`no checkpoint at ${file}`);
  const pt = PT_EXTENSIONS.find((e) => which.toLowerCase().endsWith(e));
  return { base: pt ? which : file.replace(/\.safetensors$/, ''), label: basename(pt ? which.slice(0, -pt.length) : file.replace(/\.safetensors$/, '')) };
}

export async function evaluateRun(runDir: string, opts: EvaluateRunOptions = {}): Promise<{ result: EvalResult; json: string; png: string }> {
  const files = new RunFiles(runDir);
  if (!existsSync(files.config)) throw new Error(`${runDir}: no config.json there (not a run folder?)`);
  const config = readRunConfig(files.config);
  validateTrainConfig(config);
  const split = opts.split ?? 'test';
  const { base, label } = resolveCheckpoint(files, opts.checkpoint ?? 'latest');
  const print = opts.print ?? ((s: string) => console.log(s));
  const { model, info } = await modelFromCheckpoint(base);
  try {
    const ds = await openDataset(dataConfig(config));
    const n = ds.splits[split].length;
    if (n === 0) throw new Error(`${ds.description}: the ${split} split is empty`);
    const json = opts.out ?? join(runDir, `eval-${split}-${label}.json`);
    const png = json.replace(/\.json$/, '') + '.png';
    print(`evaluating ${checkpointFiles(base).model} (step ${info.step}) on ${opts.images ? Math.min(opts.images, n) : n} ${split} images of ${ds.description}`);
    const result = await evaluate(model, ds, split, { batchSize: opts.batchSize || config.batchSize, limit: opts.images || undefined, gridPath: png });
    writeJsonAtomic(json, { run: config.name, checkpoint: checkpointFiles(base).model, step: info.step, ...result });
    print(formatEval(result, `checkpoint ${label} (step ${info.step})`));
    print(`wrote ${json} and ${png}`);
    return { result, json, png };
  } finally {
    model.dispose();
  }
}
