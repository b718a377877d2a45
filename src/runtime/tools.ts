import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './entrypoints.js';

/** A binary `make setup` installed under .tools/bin; a clear error when it is missing. */
export function toolBinary(name: string, installHint = 'make setup-demo'): string {
  const p = path.join(repoRoot, '.tools', 'bin', name);
  if (!existsSync(p)) throw new Error(`${name} is not installed (${p}): run "${installHint}" first`);
  return p;
}
