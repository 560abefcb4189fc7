// WGSL sources live in shaders/, one kernel family per file, and reach the engine through the
// generated module engine/wgsl.generated.ts (scripts/generate.ts; no file reads, so the engine
// runs in browsers). A file may hold `{{NAME}}` placeholders that the launching TypeScript
// fills in (workgroup sizes, tile sizes, the expression of an elementwise op) before the
// module is compiled once per specialisation.
import { WGSL_SOURCES } from './wgsl.generated.js';

/** The text of shaders/<file>.wgsl. */
export function wgslSource(file: string): string {
  const text = WGSL_SOURCES[file];
  if (text === undefined) throw new Error(`shaders/${file}.wgsl is not in engine/wgsl.generated.ts (run \`npm run generate\` after adding a shader)`);
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
