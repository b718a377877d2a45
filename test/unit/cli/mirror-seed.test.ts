import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MODEL, seedDemoMirror } from '../../../src/cli/mirror-seed.js';
import { FIXTURE_MARKER } from '../../../src/hub/fixture-model.js';
import { LocalMirrorHub } from '../../../src/hub/local-mirror.js';

// `qwenops dev` and `make demo` seed the local mirror the same way: the fixture of
// qwen/Qwen-7B-Chat at the demo's revisions, once, never over what is already there.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-mirror-seed-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('seedDemoMirror', () => {
  it('seeds the demo model so the local hub resolves it, and is idempotent', async () => {
    const mirror = path.join(dir, 'fresh');
    expect(await seedDemoMirror(mirror)).toEqual({ seeded: ['master', 'v1.1'], present: [] });
    const hub = new LocalMirrorHub({ root: mirror });
    const resolved = await hub.resolve(DEMO_MODEL, 'master');
    expect(resolved.files.map((f) => f.path)).toContain('model.safetensors.index.json');
    expect(resolved.needsTrustRemoteCode).toBe(true);
    expect((await hub.resolve(DEMO_MODEL, 'v1.1')).files.length).toBe(resolved.files.length);
    // No temp directory left at the mirror root.
    expect((await readdir(mirror)).filter((n) => n.startsWith('.qwenops-seed-'))).toEqual([]);

    const config = path.join(mirror, 'qwen', 'Qwen-7B-Chat', 'master', 'config.json');
    const before = (await stat(config)).mtimeMs;
    expect(await seedDemoMirror(mirror)).toEqual({ seeded: [], present: ['master', 'v1.1'] });
    expect((await stat(config)).mtimeMs).toBe(before);
  });

  it('leaves a revision the user put there alone, and fills an empty directory', async () => {
    const mirror = path.join(dir, 'user');
    const master = path.join(mirror, 'qwen', 'Qwen-7B-Chat', 'master');
    await mkdir(master, { recursive: true });
    await writeFile(path.join(master, 'config.json'), '{"real": true}\n');
    await mkdir(path.join(mirror, 'qwen', 'Qwen-7B-Chat', 'v1.1'), { recursive: true });
    expect(await seedDemoMirror(mirror)).toEqual({ seeded: ['v1.1'], present: ['master'] });
    expect(await readdir(master)).toEqual(['config.json']);
    const readme = await import('node:fs/promises').then((fs) =>
      fs.readFile(path.join(mirror, 'qwen', 'Qwen-7B-Chat', 'v1.1', 'README.md'), 'utf8'),
    );
    expect(readme).toContain(FIXTURE_MARKER);
  });
});
