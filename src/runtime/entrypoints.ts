import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Long-lived helper processes (sandbox cluster, serving simulator, simulated Jobs, workers)
// are started from the same form of the code as their parent: compiled JS under dist/
// when the parent runs from dist/, TypeScript through tsx when it runs from source
// (vitest, tsx). So tests never run a stale build and production never needs tsx.

const here = path.dirname(fileURLToPath(import.meta.url));
const runningFromDist = here.split(path.sep).includes('dist');

/** Repository root (the folder holding package.json), from either form. */
export const repoRoot = runningFromDist ? path.resolve(here, '../../..') : path.resolve(here, '../..');

/** The file of a module given relative to the repo root without extension, in the caller's form. */
export function modulePath(modulePath: string): string {
  return runningFromDist
    ? path.join(repoRoot, 'dist', `${modulePath}.js`)
    : path.join(repoRoot, `${modulePath}.ts`);
}

/**
 * The argv that runs a module given by its path relative to the repo root, without
 * extension, e.g. nodeEntrypoint('src/cluster/sandbox/main').
 */
export function nodeEntrypoint(modulePath: string): string[] {
  if (runningFromDist) {
    const js = path.join(repoRoot, 'dist', `${modulePath}.js`);
    if (!existsSync(js)) throw new Error(`missing ${js}: run "npm run build"`);
    return [process.execPath, '--enable-source-maps', js];
  }
  const ts = path.join(repoRoot, `${modulePath}.ts`);
  if (!existsSync(ts)) throw new Error(`missing ${ts}`);
  return [process.execPath, '--import', 'tsx', ts];
}
