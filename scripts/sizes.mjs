#!/usr/bin/env node
/**
 * Lists the functions longer than a limit and the files longer than a limit, to keep code readable in
 * one sitting (issue #12): `node scripts/sizes.mjs [--fn 100] [--file 400] [dir …]` (default src).
 * A function is any function declaration, expression, arrow function or method; its length counts
 * its lines from the first to the last, the nested functions included.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const args = process.argv.slice(2);
const take = (flag, fallback) => {
  const i = args.indexOf(flag);
  if (i < 0) return fallback;
  const [, v] = args.splice(i, 2);
  return Number(v);
};
const fnLimit = take('--fn', 100);
const fileLimit = take('--file', 400);
const roots = args.length ? args : ['src'];

function* files(dir) {
  if (!statSync(dir).isDirectory()) {
    yield dir;
    return;
  }
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) yield p;
  }
}

function nameOf(node) {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (node.name) return node.name.getText();
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText();
  return '(anonymous)';
}

const longFns = [];
const longFiles = [];
for (const root of roots) {
  for (const file of files(root)) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(process.cwd(), file);
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > fileLimit) longFiles.push({ file: rel, lines });
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        const n = end - start + 1;
        if (n > fnLimit) longFns.push({ file: rel, line: start + 1, name: nameOf(node), lines: n });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
}

const out = (line) => process.stdout.write(`${line}\n`);
longFns.sort((a, b) => b.lines - a.lines);
longFiles.sort((a, b) => b.lines - a.lines);
out(`functions over ${fnLimit} lines: ${longFns.length}`);
for (const f of longFns) out(`  ${String(f.lines).padStart(5)}  ${f.name}  ${f.file}:${f.line}`);
out(`files over ${fileLimit} lines: ${longFiles.length}`);
for (const f of longFiles) out(`  ${String(f.lines).padStart(5)}  ${f.file}`);
