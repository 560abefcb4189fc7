// WGSL sources live in shaders/, one kernel family per file. A file may hold `{{NAME}}`
// placeholders that the launching TypeScript fills in (workgroup sizes, tile sizes, the
// expression of an elementwise op) before the module is compiled once per specialisation.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findShaderDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'shaders')) && existsSync(join(dir, 'package.json'))) {
      return join(dir, 'shaders');
    }
    dir = dirname(dir);
  }
  throw new Error(`shaders/ folder not found above ${fileURLToPath(import.meta.url)}`);
}

let shaderDir: string | null = null;
const cache = new Map<string, string>();

/** The text of shaders/<file>.wgsl. */
export function wgslSource(file: string): string {
  let text = cache.get(file);
  if (text === undefined) {
    shaderDir ??= findShaderDir();
    text = readFileSync(join(shaderDir, `${file}.wgsl`), 'utf8');
    cache.set(file, text);
  }
  return text;
}

/**
 * Fills `{{NAME}}` placeholders of shaders/<file>.wgsl. Every placeholder must be given:
 * a missing one is a bug in the launcher, so it throws rather than compiling garbage.
 */
export function wgsl(file: string, values: Record<string, string | number> = {}): string {
  return fill(file, wgslSource(file), values);
}

function fill(file: string, text: string, values: Record<string, string | number>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    if (!(name in values)) throw new Error(`shaders/${file}.wgsl: no value for {{${name}}}`);
    return String(values[name]);
  });
}

/**
 * Picks one `// @kernel NAME` section of a file that holds several entry points sharing a
 * preamble (everything before the first marker) and fills its placeholders.
 */
export function wgslKernel(
  file: string,
  kernel: string,
  values: Record<string, string | number> = {},
): string {
  const parts = wgslSource(file).split(/^\/\/ @kernel (\w+)\s*$/m);
  for (let i = 1; i < parts.length; i += 2) {
    if (parts[i] === kernel) return fill(file, parts[0] + parts[i + 1], values);
  }
  throw new Error(`shaders/${file}.wgsl has no kernel '${kernel}'`);
}
