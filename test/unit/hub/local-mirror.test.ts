import { mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFixtureModel } from '../../../src/hub/fixture-model.js';
import { LocalMirrorHub } from '../../../src/hub/local-mirror.js';
import { HubError } from '../../../src/hub/port.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'qwenops-mirror-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('LocalMirrorHub', () => {
  it('resolves a mirrored model with computed sha256 and trust-remote-code detection', async () => {
    const fixture = await writeFixtureModel(root, 'qwen/Qwen-7B-Chat', 'master', {
      shards: 2,
      shardBytes: 4096,
    });
    const hub = new LocalMirrorHub({ root });
    const resolved = await hub.resolve('qwen/Qwen-7B-Chat', 'master');
    expect(resolved.files).toEqual(fixture.files);
    expect(resolved.totalBytes).toBe(fixture.totalBytes);
    expect(resolved.needsTrustRemoteCode).toBe(true);
    expect(resolved.commit).toBeUndefined();
    const sidecars = (await readdir(path.join(root, 'qwen', 'Qwen-7B-Chat'))).filter((n) =>
      n.startsWith('.'),
    );
    expect(sidecars).toEqual(['.qwenops-sha256-master.json']);
  });

  it('reuses cached hashes and re-hashes a file whose size or mtime changed', async () => {
    await writeFixtureModel(root, 'qwen/Cache-Test', 'main', { shards: 1, shardBytes: 2048 });
    const hub = new LocalMirrorHub({ root });
    const first = await hub.resolve('qwen/Cache-Test', 'main');
    const sidecarFile = path.join(root, 'qwen', 'Cache-Test', '.qwenops-sha256-main.json');
    // Poison the cached hash of config.json: an unchanged file must be served from the cache.
    const sidecar = JSON.parse(await readFile(sidecarFile, 'utf8'));
    sidecar.files['config.json'].sha256 = 'f'.repeat(64);
    await writeFile(sidecarFile, JSON.stringify(sidecar));
    const cached = await hub.resolve('qwen/Cache-Test', 'main');
    expect(cached.files.find((f) => f.path === 'config.json')?.sha256).toBe('f'.repeat(64));
    // Touching the file invalidates the entry.
    const configPath = path.join(root, 'qwen', 'Cache-Test', 'main', 'config.json');
    await utimes(configPath, new Date(), new Date(Date.now() + 5000));
    const rehashed = await hub.resolve('qwen/Cache-Test', 'main');
    expect(rehashed.files.find((f) => f.path === 'config.json')?.sha256).toBe(
      first.files.find((f) => f.path === 'config.json')?.sha256,
    );
  });

  it('answers NotFound naming the model and where it looked', async () => {
    const hub = new LocalMirrorHub({ root });
    const err = await hub.resolve('qwen/Missing', 'master').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect((err as HubError).code).toBe('NotFound');
    expect((err as HubError).message).toContain('qwen/Missing');
    expect((err as HubError).message).toContain(root);
  });

  it('refuses a symlink that leads outside the mirror', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'qwenops-outside-'));
    try {
      await writeFile(path.join(outside, 'secret.txt'), 'secret');
      const dir = path.join(root, 'evil', 'model', 'main');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'config.json'), '{}');
      await symlink(path.join(outside, 'secret.txt'), path.join(dir, 'leak.txt'));
      const err = await new LocalMirrorHub({ root }).resolve('evil/model', 'main').catch((e: unknown) => e);
      expect((err as HubError).code).toBe('Invalid');
      expect((err as HubError).message).toContain('outside the mirror');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('opens a file from an offset and refuses files outside the listing', async () => {
    const hub = new LocalMirrorHub({ root });
    const resolved = await hub.resolve('qwen/Qwen-7B-Chat', 'master');
    const whole = await readFile(path.join(root, 'qwen', 'Qwen-7B-Chat', 'master', 'config.json'), 'utf8');
    expect(await text(await hub.openFile(resolved, 'config.json', 10))).toBe(whole.slice(10));
    await expect(hub.openFile(resolved, '../../etc/passwd', 0)).rejects.toThrow(HubError);
    await expect(hub.openFile(resolved, 'config.json', whole.length + 1)).rejects.toThrow(/outside/);
  });
});
