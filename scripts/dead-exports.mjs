#!/usr/bin/env node
/**
 * Lists the exports of src/ that no other file imports (src, test, bench, scripts, the vitest
 * configs): `node scripts/dead-exports.mjs`. Each is marked `used here` when its own file uses the
 * name (drop the `export`) or `unused` (drop the declaration). A module imported whole (`import * as`,
 * `await import(…)`, `export * from`) counts as using every export. Uses the TypeScript compiler API.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const roots = ['src', 'test', 'bench', 'scripts'];
const extra = readdirSync('.').filter((f) => /^vitest.*\.config\.ts$/.test(f));

function* files(dir) {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (/\.(ts|mts|mjs)$/.test(name) && !name.endsWith('.d.ts')) yield p;
  }
}

const all = [...roots.flatMap((r) => [...files(r)]), ...extra].map((f) => resolve(f));
const sources = new Map(
  all.map((f) => [f, ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true)]),
);

function target(from, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(from), spec);
  for (const c of [base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base, `${base}.ts`]) {
    if (sources.has(c)) return c;
  }
  return undefined;
}

/** file → names imported from it by other files; '*' when imported whole. */
const used = new Map();
const use = (file, name) => {
  if (!used.has(file)) used.set(file, new Set());
  used.get(file).add(name);
};

for (const [file, sf] of sources) {
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      const to = target(file, node.moduleSpecifier.text);
      if (to && to !== file) {
        if (ts.isImportDeclaration(node)) {
          const b = node.importClause?.namedBindings;
          if (node.importClause?.name) use(to, 'default');
          if (b && ts.isNamespaceImport(b)) use(to, '*');
          if (b && ts.isNamedImports(b))
            for (const el of b.elements) use(to, (el.propertyName ?? el.name).text);
        } else if (!node.exportClause || ts.isNamespaceExport(node.exportClause)) use(to, '*');
        else for (const el of node.exportClause.elements) use(to, (el.propertyName ?? el.name).text);
      }
    }
    if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'import')) &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      const to = target(file, node.arguments[0].text);
      if (to) use(to, '*');
    }
    // vi.mock('../src/x.js') and the like: a module named in a string is counted as used whole.
    if (ts.isStringLiteralLike(node) && /^\.\.?\//.test(node.text)) {
      const to = target(file, node.text);
      if (to && to !== file && !ts.isImportDeclaration(node.parent) && !ts.isExportDeclaration(node.parent))
        use(to, '*');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}

const isExported = (node) => ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Export;
const out = [];
for (const [file, sf] of sources) {
  if (!relative('.', file).startsWith('src/')) continue;
  const imported = used.get(file) ?? new Set();
  if (imported.has('*')) continue;
  for (const stmt of sf.statements) {
    const names = [];
    if (ts.isVariableStatement(stmt) && isExported(stmt))
      for (const d of stmt.declarationList.declarations) if (ts.isIdentifier(d.name)) names.push(d.name.text);
    if (
      (ts.isFunctionDeclaration(stmt) ||
        ts.isClassDeclaration(stmt) ||
        ts.isInterfaceDeclaration(stmt) ||
        ts.isTypeAliasDeclaration(stmt) ||
        ts.isEnumDeclaration(stmt)) &&
      stmt.name &&
      isExported(stmt)
    )
      names.push(stmt.name.text);
    for (const name of names) {
      if (imported.has(name)) continue;
      const text = sf.text;
      const refs = text.match(new RegExp(`\\b${name}\\b`, 'g'))?.length ?? 0;
      const line = sf.getLineAndCharacterOfPosition(stmt.getStart(sf)).line + 1;
      out.push(`${relative('.', file)}:${line}  ${name}  ${refs > 1 ? 'used here' : 'unused'}`);
    }
  }
}
process.stdout.write(`${out.length} exports imported by no other file\n${out.join('\n')}\n`);
