import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { createArtifactStore } from '../../../src/storage/index.js';
import { MinioArtifactStore, TEMP_PREFIX } from '../../../src/storage/minio.js';
import { StorageError } from '../../../src/storage/port.js';
import { type RunningMinio, startMinio } from '../../support/minio.js';
import { freePort } from '../../support/ports.js';

let minio: RunningMinio;
let store: MinioArtifactStore;
beforeAll(async () => {
  minio = await startMinio();
  store = minio.store;
});
afterAll(async () => {
  await minio?.stop();
});

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

/** Every key in the bucket, temp keys included (the raw S3 listing, not the store's). */
async function rawKeys(prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.client.listObjectsV2(minio.bucket, prefix, true) as AsyncIterable<{
    name: string;
  }>) {
    keys.push(item.name);
  }
  return keys;
}

async function incompleteUploads(): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.client.listIncompleteUploads(minio.bucket, '', true) as AsyncIterable<{
    key: string;
  }>) {
    keys.push(item.key);
  }
  return keys;
}

/** A stream of `total` bytes in 1 MiB chunks that waits on `gate` once `gateAfter` bytes are out. */
function gatedStream(total: number, gateAfter: number, gate: Promise<void>): Readable {
  let sent = 0;
  return new Readable({
    async read() {
      if (sent >= total) return this.push(null);
      if (sent >= gateAfter) await gate;
      const chunk = Buffer.alloc(Math.min(1 << 20, total - sent), sent % 251);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

describe('MinioArtifactStore against a real MinIO', () => {
  it('puts, stats with the sha256 from object metadata, and reads back', async () => {
    const body = Buffer.from('{"architectures":["QWenLMHeadModel"]}');
    const info = await store.put('models/q/config.json', body, { contentType: 'application/json' });
    expect(info).toMatchObject({ key: 'models/q/config.json', size: body.length, sha256: sha(body) });
    const raw = await store.client.statObject(minio.bucket, 'models/q/config.json');
    expect(raw.metaData.sha256).toBe(sha(body));
    expect(raw.metaData['content-type']).toBe('application/json');
    expect(await store.stat('models/q/config.json')).toMatchObject({ size: body.length, sha256: sha(body) });
    expect(await store.getBuffer('models/q/config.json')).toEqual(body);
    expect(await store.getJson('models/q/config.json')).toEqual({ architectures: ['QWenLMHeadModel'] });
    expect(await rawKeys(TEMP_PREFIX)).toEqual([]);
  });

  it('creates a key only when it is free (If-None-Match): of racing writers exactly one wins', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => store.create('claims/000000000001', `writer ${i}`)),
    );
    const winners = results.filter((r) => r !== undefined);
    expect(winners).toHaveLength(1);
    const body = await store.getBuffer('claims/000000000001');
    expect(winners[0]).toMatchObject({ key: 'claims/000000000001', sha256: sha(body) });
    expect(await store.stat('claims/000000000001')).toMatchObject({ size: body.length, sha256: sha(body) });
    expect(await store.create('claims/000000000001', 'late')).toBeUndefined();
    expect(await store.getBuffer('claims/000000000001')).toEqual(body);
  });

  it('streams a multipart upload and keeps the final key invisible until it is verified', async () => {
    const small = await MinioArtifactStore.open({
      endpoint: minio.endpoint,
      bucket: minio.bucket,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
      partSize: 5 * 1024 * 1024,
    });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const total = 12 * 1024 * 1024 + 123;
    // Held after 7 MiB: the first 5 MiB part is on the server, the upload is not finished.
    const upload = small.put('models/q/model-00001-of-00001.safetensors', gatedStream(total, 7 << 20, gate));
    let inFlight: string[] = [];
    for (let i = 0; i < 200 && inFlight.length === 0; i++) {
      inFlight = await incompleteUploads();
      if (inFlight.length === 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(inFlight).toHaveLength(1);
    expect(inFlight[0]?.startsWith(TEMP_PREFIX)).toBe(true);
    expect(await small.stat('models/q/model-00001-of-00001.safetensors')).toBeUndefined();
    open();
    const info = await upload;
    expect(info.size).toBe(total);
    const back = await small.getBuffer('models/q/model-00001-of-00001.safetensors');
    expect(back.length).toBe(total);
    expect(sha(back)).toBe(info.sha256);
    expect((await small.stat('models/q/model-00001-of-00001.safetensors'))?.sha256).toBe(info.sha256);
    expect(await rawKeys(TEMP_PREFIX)).toEqual([]);
    expect(await incompleteUploads()).toEqual([]);
  });

  it('an upload aborted mid-stream leaves no final object, no temp key and no multipart parts', async () => {
    const small = await MinioArtifactStore.open({
      endpoint: minio.endpoint,
      bucket: minio.bucket,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
      partSize: 5 * 1024 * 1024,
    });
    const controller = new AbortController();
    // Big enough that a multipart upload has started when the abort lands.
    const source = gatedStream(20 * 1024 * 1024, Number.POSITIVE_INFINITY, Promise.resolve());
    let produced = 0;
    source.on('data', () => {
      produced++;
    });
    const readable = Readable.from(
      (async function* () {
        let n = 0;
        for await (const chunk of source) {
          yield chunk;
          if (++n === 7) {
            controller.abort(new Error('user aborted'));
            throw controller.signal.reason;
          }
        }
      })(),
    );
    await expect(small.put('models/q/aborted.bin', readable)).rejects.toThrow('user aborted');
    expect(produced).toBeGreaterThan(5);
    expect(await small.stat('models/q/aborted.bin')).toBeUndefined();
    expect(await rawKeys(TEMP_PREFIX)).toEqual([]);
    expect(await incompleteUploads()).toEqual([]);
  });

  it('refuses content whose sha256 differs from the expected one and writes nothing', async () => {
    const err = await store
      .put('models/q/tokenizer.json', Buffer.from('tokens'), { expectedSha256: sha('something else') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('ChecksumMismatch');
    expect((err as StorageError).retryable).toBe(true);
    expect(await store.stat('models/q/tokenizer.json')).toBeUndefined();
    expect(await rawKeys(TEMP_PREFIX)).toEqual([]);
  });

  it.each(['../x', '/abs', 'a//b', 'a\\b', 'a/../b'])('refuses the key %j', async (key) => {
    await expect(store.put(key, 'x')).rejects.toBeInstanceOf(InputValidationError);
    await expect(store.stat(key)).rejects.toBeInstanceOf(InputValidationError);
  });

  it('refuses keys in the reserved temp space', async () => {
    await expect(store.put(`${TEMP_PREFIX}sneaky`, 'x')).rejects.toMatchObject({ code: 'InvalidKey' });
  });

  it('lists like a directory, deletes a prefix in batches, round-trips a manifest', async () => {
    for (let i = 0; i < 25; i++)
      await store.put(`runs/r1/part-${String(i).padStart(2, '0')}.txt`, `part ${i}`);
    await store.put('runs/r10/other.txt', 'other');
    const listed: string[] = [];
    for await (const o of store.list('runs/r1/')) listed.push(o.key);
    expect(listed).toHaveLength(25);
    expect(listed.every((k) => k.startsWith('runs/r1/'))).toBe(true);
    const single: string[] = [];
    for await (const o of store.list('runs/r10/other.txt')) single.push(`${o.key}:${o.sha256}`);
    expect(single).toEqual([`runs/r10/other.txt:${sha('other')}`]);

    const manifest = await store.writeManifest(
      'runs/r1',
      [{ path: 'part-00.txt', size: 6, sha256: sha('part 0') }],
      {
        model: 'qwen/Qwen-7B-Chat',
      },
    );
    expect(await store.readManifest('runs/r1')).toEqual(manifest);
    expect(await store.readManifest('runs/none')).toBeUndefined();

    expect(await store.deletePrefix('runs/r1')).toBe(26);
    const left: string[] = [];
    for await (const o of store.list('runs')) left.push(o.key);
    expect(left).toEqual(['runs/r10/other.txt']);
  });

  it('maps keys to s3:// URIs and back, refusing other buckets', () => {
    expect(store.uri('models/q/config.json')).toBe(`s3://${minio.bucket}/models/q/config.json`);
    expect(store.keyFromUri(`s3://${minio.bucket}/models/q/config.json`)).toBe('models/q/config.json');
    expect(() => store.keyFromUri('s3://someone-else/models/q/config.json')).toThrow(
      /not this store's bucket/,
    );
    expect(() => store.keyFromUri('file:///tmp/x')).toThrow(StorageError);
    expect(() => store.keyFromUri(`s3://${minio.bucket}/../x`)).toThrow(InputValidationError);
  });

  it('maps a missing object to NotFound and an unreachable server to retryable Unavailable', async () => {
    await expect(store.get('models/none.bin')).rejects.toMatchObject({ code: 'NotFound', retryable: false });
    await store.delete('models/none.bin');
    const dead = new MinioArtifactStore({
      endpoint: `http://127.0.0.1:${await freePort()}`,
      bucket: 'qwenops',
      accessKey: 'x',
      secretKey: 'y',
    });
    const err = await dead.stat('models/x.bin').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'Unavailable', retryable: true });
  });

  it('refuses wrong credentials without retrying', async () => {
    const wrong = new MinioArtifactStore({
      endpoint: minio.endpoint,
      bucket: minio.bucket,
      accessKey: minio.accessKey,
      secretKey: 'wrong-secret',
    });
    const err = await wrong.put('models/x.bin', 'x').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'Unavailable', retryable: false });
    expect((err as Error).message).toContain('accessKey/secretKey');
  });

  it('is what createArtifactStore builds for store.kind=minio, creating the bucket once', async () => {
    const config = loadConfig({
      env: {
        QWENOPS_STORE: 'minio',
        QWENOPS_S3_ENDPOINT: minio.endpoint,
        QWENOPS_S3_BUCKET: 'fresh-bucket',
        QWENOPS_S3_ACCESS_KEY: minio.accessKey,
        QWENOPS_S3_SECRET_KEY: minio.secretKey,
      },
    });
    const created = await createArtifactStore(config.store);
    expect(created.kind).toBe('minio');
    await createArtifactStore(config.store); // bucket exists: adopted, no error
    await created.put('hello.txt', 'hi');
    expect(await store.client.bucketExists('fresh-bucket')).toBe(true);
    expect((await created.stat('hello.txt'))?.sha256).toBe(sha('hi'));
  });
});
