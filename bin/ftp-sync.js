#!/usr/bin/env node
/**
 * `ftp-sync` (the package's bin, what `npx ftp-sync` runs).
 *
 * Why a shim and not a `prepare` build: `npm ci` would then run tsc on every install (CI, the
 * Docker build's deps stage, which has no TypeScript), and a `dist/` built once goes stale as soon as
 * the source is edited, so `npx ftp-sync` would quietly run old code. Instead:
 * - in a checkout (src/cli.ts is here and tsx, a devDependency, is installed): the TypeScript source,
 *   through tsx's ESM API — always the code you are looking at, no build step;
 * - otherwise (a production install, the Docker image): the compiled dist/src/cli.js (npm run build).
 */
import { existsSync } from 'node:fs';

const source = new URL('../src/cli.ts', import.meta.url);
const compiled = new URL('../dist/src/cli.js', import.meta.url);

async function loadCli() {
  if (existsSync(source)) {
    let tsx;
    try {
      tsx = await import('tsx/esm/api');
    } catch {
      tsx = undefined; // no devDependencies: fall back to the build
    }
    if (tsx) {
      tsx.register();
      return import(source.href);
    }
  }
  if (existsSync(compiled)) return import(compiled.href);
  process.stderr.write('ftp-sync: neither tsx (npm ci) nor a build (npm run build) is installed here\n');
  process.exit(1);
}

const cli = await loadCli();
await cli.main(process.argv);
