// `npm run convert -- IN.pt OUT.safetensors [--names seed|zalando]`: a PyTorch state_dict
// (torch.save .pt / .pth, or safetensors) as a safetensors file, read by the restricted
// unpickler of model/torch_pt.ts (nothing in the file is executed). Exit codes: 0 written,
// 1 the input was refused, 2 bad arguments.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CheckpointError, convertStateDict } from '../model/checkpoint.js';
import { NAME_SCHEMES, type NameScheme } from '../model/names.js';
import { PtError } from '../model/torch_pt.js';
import { SafetensorsError } from '../model/safetensors.js';
import { readFileBytes, writeFileAtomic } from '../model/safetensors_file.js';

function help(): string {
  return [
    'Usage: npm run convert -- IN OUT.safetensors [options]',
    '',
    "Converts a PyTorch state_dict to safetensors: a torch.save file (.pt / .pth; a whole training",
    "checkpoint gives its model's state_dict, from the first of its keys 'state_dict',",
    "'model_state_dict', 'model', ... that holds one), or a safetensors file (to rename it). The",
    '.pt file is read without executing anything: only tensors, storages and dicts are accepted',
    '(a pickled nn.Module, any other callable or a legacy pre-1.6 file is refused).',
    "A state_dict of this project's VQ-VAE is checked against the architecture its shapes give and",
    'written with that config in its metadata (train --init-from, eval, sample and the library load',
    'it); any other state_dict is written with its names and dtypes as they are.',
    '',
    'Options:',
    "      --names S     write the VQ-VAE's tensors under the seed repository's names (seed:",
    '                    encoder.conv1.weight, ...) or the zalando notebook\'s (zalando:',
    '                    _encoder._conv_1.weight, ...); default: the scheme the input uses',
    '      --overwrite   replace OUT if it exists',
    '  -h, --help        this text',
  ].join('\n');
}

function main(): number {
  let a;
  try {
    a = parseArgs({
      args: process.argv.slice(2),
      options: { names: { type: 'string' }, overwrite: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
  } catch (e) {
    console.error(`convert: ${(e as Error).message.replace(/\. To specify.*$/s, '')} (see --help)`);
    return 2;
  }
  if (a.values.help) {
    console.log(help());
    return 0;
  }
  if (a.positionals.length !== 2) {
    console.error('convert: give an input and an output file, e.g. npm run convert -- model.pt model.safetensors (see --help)');
    return 2;
  }
  const [inPath, outPath] = a.positionals;
  const names = a.values.names as NameScheme | undefined;
  if (names !== undefined && !NAME_SCHEMES.includes(names)) {
    console.error(`convert: --names must be ${NAME_SCHEMES.join(' or ')}, got '${names}'`);
    return 2;
  }
  if (!outPath.endsWith('.safetensors')) {
    console.error(`convert: the output must be a .safetensors file, got ${outPath}`);
    return 2;
  }
  if (existsSync(outPath) && !a.values.overwrite) {
    console.error(`convert: ${outPath} exists (pass --overwrite to replace it)`);
    return 2;
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileBytes(inPath);
  } catch (e) {
    console.error(`convert: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `${inPath}: no such file` : (e as Error).message}`);
    return 1;
  }
  try {
    const r = convertStateDict(bytes, inPath, { names, onWarning: (m) => console.warn(`convert: ${m}`) });
    writeFileAtomic(outPath, r.bytes);
    const from = r.key ? ` (the state_dict under key '${r.key}')` : '';
    if (r.config) {
      const c = r.config;
      console.log(
        `wrote ${outPath}: ${r.tensors} tensors of the VQ-VAE${from} under the ${r.names} names ` +
          `(hidden ${c.hidden}, residual ${c.residualHidden}x${c.residualBlocks}, K ${c.codebookSize}, D ${c.embeddingDim}${c.ema ? ', EMA codebook' : ''})`,
      );
    } else {
      console.log(`wrote ${outPath}: ${r.tensors} tensors${from}, names as they are (not this VQ-VAE's state_dict)`);
    }
    return 0;
  } catch (e) {
    if (e instanceof CheckpointError || e instanceof PtError || e instanceof SafetensorsError) {
      console.error(`convert: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = main();
