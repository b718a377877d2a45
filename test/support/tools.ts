import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../src/runtime/entrypoints.js';

// Paths of the real servers `make setup` installs under .tools/. A missing one is a hard
// failure that says how to get it; tests never skip because a server is absent.
export function toolPath(name: string): string {
  const p = path.join(repoRoot, '.tools', 'bin', name);
  if (!existsSync(p)) {
    throw new Error(`${name} is not installed at ${p}: run "make setup" (scripts/setup.sh test) first`);
  }
  return p;
}

/** Headless Chromium for the Temporal UI checks (scripts/setup/57-chromium.sh links Debian's). */
export function chromiumPath(): string {
  return toolPath('chromium');
}
