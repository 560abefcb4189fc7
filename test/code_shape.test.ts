// The code's shape as the project keeps it (issue #19): no function in train/ over about 80
// lines, and no module of the conv folder over about 400 lines, so each reads as one concept.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, f);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (rel.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** Every function, method, constructor and arrow function in `file`, with its line count. */
function functionLengths(file: string): { name: string; lines: number }[] {
  const src = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { name: string; lines: number }[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const first = src.getLineAndCharacterOfPosition(n.getStart()).line;
      const last = src.getLineAndCharacterOfPosition(n.getEnd()).line;
      const named = (n as { name?: ts.Node }).name ?? (ts.isVariableDeclaration(n.parent) ? n.parent.name : undefined);
      out.push({ name: `${file}:${first + 1} ${named?.getText(src) ?? '(anonymous)'}`, lines: last - first + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

t.test('no function in train/ is over 80 lines', async (t) => {
  const long = tsFiles('train').flatMap(functionLengths).filter((f) => f.lines > 80);
  t.same(long.map((f) => `${f.name} (${f.lines} lines)`), []);
});

t.test('no module in engine/conv/ is over 420 lines', async (t) => {
  const long = tsFiles('engine/conv')
    .map((f) => ({ f, lines: readFileSync(join(ROOT, f), 'utf8').split('\n').length }))
    .filter((x) => x.lines > 420);
  t.same(long.map((x) => `${x.f} (${x.lines} lines)`), []);
});
