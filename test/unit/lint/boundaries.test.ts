import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

// The layering rule `make lint` runs: each rule is shown to fire on a fixture tree that
// breaks it, and the repository itself holds.

const script = resolve(dirname(fileURLToPath(import.meta.url)), '../../../scripts/check-boundaries.mjs');
const dirs: string[] = [];

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'qwenops-boundaries-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

function check(root?: string) {
  const run = spawnSync(process.execPath, root ? [script, root] : [script], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('layering boundaries', () => {
  it('holds for the repository', () => {
    const result = check();
    expect(result.output).toContain('layering holds');
    expect(result.status).toBe(0);
  });

  it('allows what a workflow may import', () => {
    const root = tree({
      'workflows/a.ts': [
        "import { proxyActivities } from '@temporalio/workflow';",
        "import type { Acts } from '../activities/contracts.js';",
        "import { type Other } from '../activities/other.js';",
        "import { parseSpec } from '../src/domain/spec.js';",
        "import { helper } from './helper.js';",
      ].join('\n'),
      'src/domain/spec.ts': "import { z } from 'zod';\nimport { n } from './names.js';\n",
    });
    expect(check(root).status).toBe(0);
  });

  it('refuses a value import of activities, I/O code or Node from a workflow', () => {
    const root = tree({
      'workflows/a.ts': [
        "import { createActivities } from '../activities/contracts.js';",
        "import { readFileSync } from 'node:fs';",
        "import { Store } from '../src/knowledge/store.js';",
        "const m = await import('../src/cluster/port.js');",
      ].join('\n'),
    });
    const result = check(root);
    expect(result.status).toBe(1);
    expect(result.output).toContain("workflows/a.ts:1: imports '../activities/contracts.js'");
    expect(result.output).toContain("workflows/a.ts:2: imports 'node:fs'");
    expect(result.output).toContain("workflows/a.ts:3: imports '../src/knowledge/store.js'");
    expect(result.output).toContain("workflows/a.ts:4: imports '../src/cluster/port.js'");
    expect(result.output).toContain('4 import(s) break the layering rules');
  });

  it('refuses Temporal in src/ outside its Temporal and CLI folders, and non-domain imports in src/domain', () => {
    const root = tree({
      'src/services/s.ts': "import type { Client } from '@temporalio/client';\n",
      'src/temporal/t.ts': "import { Client } from '@temporalio/client';\n",
      'src/cli/c.ts': "import { Client } from '@temporalio/client';\n",
      'src/domain/d.ts': "import type { X } from '../cluster/port.js';\n",
    });
    const result = check(root);
    expect(result.status).toBe(1);
    expect(result.output).toContain("src/services/s.ts:1: imports '@temporalio/client' (type-only)");
    expect(result.output).toContain("src/domain/d.ts:1: imports '../cluster/port.js' (type-only)");
    expect(result.output).not.toContain('src/temporal/t.ts');
    expect(result.output).not.toContain('src/cli/c.ts');
  });
});
