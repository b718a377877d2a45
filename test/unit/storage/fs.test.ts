import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { StorageError } from '../../../src/storage/port.js';

let root: string;
let store: FsArtifactStore;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'qwenops-fs-store-'));
  store = new FsArtifactStore(root);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('FsArtifactStore', () => {
  it('puts, stats (sha256 from the sidecar) and reads back', async () => {
    const info = await store.put('models/a/config.json', '{"a":1}');
    expect(info).toMatchObject({ key: 'models/a/config.json', size: 7, sha256: sha('{"a":1}') });
    expect(await store.stat('models/a/config.json')).toMatchObject({ size: 7, sha256: sha('{"a":1}') });
    expect(await store.getJson('models/a/config.json')).toEqual({ a: 1 });
    expect(await store.stat('models/a/missing.json')).toBeUndefined();
    await expect(store.get('models/a/missing.json')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('creates a key only when it is free: of racing writers exactly one wins, nothing is left behind', async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => store.create('claims/000000000001', `writer ${i}`)),
    );
    const winners = results.filter((r) => r !== undefined);
    expect(winners).toHaveLength(1);
    const body = await store.getBuffer('claims/000000000001');
    expect(winners[0]).toMatchObject({ key: 'claims/000000000001', size: body.length, sha256: sha(body) });
    expect(await store.stat('claims/000000000001')).toMatchObject({ sha256: sha(body) });
    expect(await store.create('claims/000000000001', 'late')).toBeUndefined();
    expect((await allFiles(path.join(root, 'claims'))).filter((f) => f.includes('.qwenops-tmp-'))).toEqual(
      [],
    );
    await expect(store.create('../escape', 'x')).rejects.toBeInstanceOf(InputValidationError);
  });

  it('refuses content whose sha256 differs and leaves nothing behind', async () => {
    const err = await store
      .put('models/b/weights.bin', Buffer.from('payload'), { expectedSha256: sha('other') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('ChecksumMismatch');
    expect(await store.stat('models/b/weights.bin')).toBeUndefined();
    expect((await allFiles(root)).filter((f) => f.includes('models/b'))).toEqual([]);
  });

  it('leaves no partial file when the source stream fails', async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1024, 1));
        this.destroy(new Error('source broke'));
      },
    });
    await expect(store.put('models/c/shard.bin', failing)).rejects.toThrow('source broke');
    expect(await store.stat('models/c/shard.bin')).toBeUndefined();
    expect((await allFiles(root)).filter((f) => f.includes('models/c'))).toEqual([]);
  });

  it.each(['../x', '/abs', 'a//b', 'a\\b', 'a/./b', ''])('refuses the key %j', async (key) => {
    await expect(store.put(key, 'x')).rejects.toBeInstanceOf(InputValidationError);
  });

  it('lists under a prefix (sidecars and temp files hidden), deletes a prefix, round-trips manifests', async () => {
    await store.put('runs/r1/a.txt', 'a');
    await store.put('runs/r1/sub/b.txt', 'bb');
    await store.put('runs/r10/c.txt', 'c');
    const listed = [];
    for await (const o of store.list('runs/r1')) listed.push([o.key, o.size, o.sha256]);
    expect(listed).toEqual([
      ['runs/r1/a.txt', 1, sha('a')],
      ['runs/r1/sub/b.txt', 2, sha('bb')],
    ]);
    const manifest = await store.writeManifest('runs/r1', [{ path: 'a.txt', size: 1, sha256: sha('a') }], {
      run: 'r1',
    });
    expect(await store.readManifest('runs/r1')).toEqual(manifest);
    expect(await store.readManifest('runs/none')).toBeUndefined();
    expect(await store.deletePrefix('runs/r1')).toBe(3);
    expect(await store.stat('runs/r10/c.txt')).toBeDefined();
  });

  it('maps keys to file:// URIs and back, refusing URIs outside the root', () => {
    const uri = store.uri('models/a/config.json');
    expect(uri).toBe(`file://${path.join(root, 'models/a/config.json')}`);
    expect(store.keyFromUri(uri)).toBe('models/a/config.json');
    expect(() => store.keyFromUri('file:///etc/passwd')).toThrow(StorageError);
    expect(() => store.keyFromUri('s3://bucket/key')).toThrow(StorageError);
  });
});
