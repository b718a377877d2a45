import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { type FixtureModel, writeFixtureModel } from '../../../src/hub/fixture-model.js';
import { createModelHub } from '../../../src/hub/index.js';
import { LocalMirrorHub } from '../../../src/hub/local-mirror.js';
import type { ResolvedModel } from '../../../src/hub/port.js';
import { createLogger } from '../../../src/observability/logger.js';
import { downloadModelToStore } from '../../../src/services/model-download.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';

// The embedded default path: local mirror (seeded with the fixture model) -> fs store.

const MODEL = 'qwen/Qwen-7B-Chat';
const REVISION = 'master';
const SHARD = 'model-00001-of-00002.safetensors';
const logger = createLogger('test.local-download', 'silent');

let work: string;
let fixture: FixtureModel;
let store: FsArtifactStore;

/** The mirror, counting opens (a real hub; the count is what the assertions need). */
class CountingMirror extends LocalMirrorHub {
  opened: { path: string; offset: number }[] = [];
  override async openFile(
    resolved: ResolvedModel,
    file: string,
    offset: number,
    signal?: AbortSignal,
  ): Promise<Readable> {
    this.opened.push({ path: file, offset });
    return super.openFile(resolved, file, offset, signal);
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'qwenops-local-dl-'));
  fixture = await writeFixtureModel(path.join(work, 'mirror'), MODEL, REVISION, {
    shards: 2,
    shardBytes: 256 * 1024,
  });
  store = new FsArtifactStore(path.join(work, 'store'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function storedFiles(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.key.slice(prefix.length + 1));
  return out.sort();
}

describe('downloadModelToStore: local mirror -> fs store', () => {
  it('is what createModelHub builds for hub.kind=local', async () => {
    const config = loadConfig({
      env: { QWENOPS_HUB: 'local', QWENOPS_HUB_MIRROR_DIR: path.join(work, 'mirror') },
    });
    const hub = createModelHub(config.hub, { logger });
    expect(hub.kind).toBe('local');
    expect((await hub.resolve(MODEL, REVISION)).files).toEqual(fixture.files);
  });

  it('copies every file verified, then a second run reads nothing from the mirror', async () => {
    const hub = new CountingMirror({ root: path.join(work, 'mirror'), logger });
    const resolved = await hub.resolve(MODEL, REVISION);
    const prefix = 'models/local/run-1';
    const manifest = await downloadModelToStore({
      hub,
      store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-1'),
      logger,
    });
    expect(manifest.metadata).toMatchObject({ model: MODEL, revision: REVISION, hub: 'local' });
    expect(await storedFiles(prefix)).toEqual(
      [...fixture.files.map((f) => f.path), 'qwenops-manifest.json'].sort(),
    );
    for (const f of fixture.files) {
      const stored = await store.getBuffer(`${prefix}/${f.path}`);
      expect(stored.equals(await readFile(path.join(fixture.root, f.path)))).toBe(true);
    }
    expect(hub.opened).toHaveLength(fixture.files.length);

    hub.opened = [];
    expect(
      await downloadModelToStore({
        hub,
        store,
        resolved,
        prefix,
        stagingDir: path.join(work, 'staging-1'),
        logger,
      }),
    ).toEqual(manifest);
    expect(hub.opened).toEqual([]);
  });

  it('replaces a stored file whose content is wrong, and drops a stale manifest before touching files', async () => {
    const hub = new CountingMirror({ root: path.join(work, 'mirror'), logger });
    const resolved = await hub.resolve(MODEL, REVISION);
    const prefix = 'models/local/run-2';
    await store.put(`${prefix}/config.json`, '{"corrupted": true}');
    await store.writeManifest(prefix, [{ path: 'config.json', size: 19, sha256: 'a'.repeat(64) }], {
      model: MODEL,
      revision: 'older',
    });
    await downloadModelToStore({
      hub,
      store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-2'),
      logger,
    });
    expect(hub.opened.map((o) => o.path)).toContain('config.json');
    expect(
      (await store.getBuffer(`${prefix}/config.json`)).equals(
        await readFile(path.join(fixture.root, 'config.json')),
      ),
    ).toBe(true);
    expect((await store.readManifest(prefix))?.metadata.revision).toBe(REVISION);
  });

  it('aborts promptly, leaving no partial object and no manifest; the staging file resumes next time', async () => {
    const hub = new CountingMirror({ root: path.join(work, 'mirror'), logger });
    const resolved = await hub.resolve(MODEL, REVISION);
    const prefix = 'models/local/run-3';
    const stagingDir = path.join(work, 'staging-3');
    const controller = new AbortController();
    // concurrency 1: files go in listing order, so bytes past `before` are the shard's.
    const before = resolved.files.findIndex((f) => f.path === SHARD);
    const bytesBefore = resolved.files.slice(0, before).reduce((sum, f) => sum + f.size, 0);
    const err = await downloadModelToStore({
      hub,
      store,
      resolved,
      prefix,
      stagingDir,
      concurrency: 1,
      signal: controller.signal,
      progressIntervalMs: 0,
      logger,
      onProgress: (p) => {
        if (p.bytesDone > bytesBefore + 64 * 1024 && !controller.signal.aborted)
          controller.abort(new Error('stop now'));
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('stop now');
    expect(await store.readManifest(prefix)).toBeUndefined();
    expect(await store.stat(`${prefix}/${SHARD}`)).toBeUndefined();
    const onDisk = await readdir(path.join(work, 'store', prefix), { recursive: true }).catch(
      () => [] as string[],
    );
    expect(onDisk.filter((n) => n.includes('.qwenops-tmp-'))).toEqual([]);

    hub.opened = [];
    await downloadModelToStore({ hub, store, resolved, prefix, stagingDir, logger });
    // The shard resumes from what the aborted call had staged; earlier files are not read again.
    const shardOpen = hub.opened.find((o) => o.path === SHARD);
    expect(shardOpen?.offset).toBeGreaterThanOrEqual(64 * 1024);
    for (const f of resolved.files.slice(0, before))
      expect(hub.opened.map((o) => o.path)).not.toContain(f.path);
    expect(await store.readManifest(prefix)).toBeDefined();
    expect(await readdir(stagingDir)).toEqual([]);
  });
});
