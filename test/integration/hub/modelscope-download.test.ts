import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelScopeHub } from '../../../src/hub/modelscope.js';
import { HubError } from '../../../src/hub/port.js';
import { createLogger } from '../../../src/observability/logger.js';
import {
  type DownloadProgress,
  downloadModelToStore,
  stagingFileName,
} from '../../../src/services/model-download.js';
import { TEMP_PREFIX } from '../../../src/storage/minio.js';
import { type RunningMinio, startMinio } from '../../support/minio.js';
import {
  type ModelScopeFixtureServer,
  startModelScopeFixtureServer,
} from '../../support/modelscope-fixture-server.js';

// ModelScope (fixture server speaking its API over real sockets) -> download service -> real MinIO.

const MODEL = 'qwen/Qwen-7B-Chat';
const REVISION = 'v1.1.4';
const SHARD = 'model-00002-of-00003.safetensors';
const logger = createLogger('test.modelscope-download', 'silent');

let minio: RunningMinio;
let hubServer: ModelScopeFixtureServer;
let work: string;
let prefixCounter = 0;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'qwenops-ms-dl-'));
  [minio, hubServer] = await Promise.all([
    startMinio(),
    startModelScopeFixtureServer({
      dir: path.join(work, 'fixtures'),
      models: [{ model: MODEL, revision: REVISION, shards: 3, shardBytes: 384 * 1024 }],
    }),
  ]);
});
afterAll(async () => {
  await Promise.all([minio?.stop(), hubServer?.stop()]);
  await rm(work, { recursive: true, force: true });
});
beforeEach(() => {
  hubServer.faults.reset();
  hubServer.resetStats();
});

function hub(token?: string): ModelScopeHub {
  return new ModelScopeHub({ endpoint: hubServer.endpoint, token, baseDelayMs: 5, maxDelayMs: 50, logger });
}

function freshPrefix(): string {
  return `models/${MODEL}/run-${++prefixCounter}`;
}

async function fixtureBytes(file: string): Promise<Buffer> {
  const root = hubServer.models[0]?.root as string;
  return readFile(path.join(root, file));
}

/** Byte-for-byte comparison (Buffer.equals; deep toEqual on large buffers is needlessly slow). */
async function expectStoredBytes(key: string, file: string): Promise<void> {
  const [stored, original] = await Promise.all([minio.store.getBuffer(key), fixtureBytes(file)]);
  expect(stored.length).toBe(original.length);
  expect(stored.equals(original)).toBe(true);
}

async function storeKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of minio.store.list(prefix)) keys.push(o.key);
  return keys;
}

async function tempKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of minio.store.client.listObjectsV2(
    minio.bucket,
    TEMP_PREFIX,
    true,
  ) as AsyncIterable<{
    name: string;
  }>) {
    keys.push(item.name);
  }
  return keys;
}

describe('ModelScopeHub.resolve', () => {
  it('lists the files with size and sha256, skips git metadata and directories, records the commit', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const fixture = hubServer.models[0]!;
    expect(resolved.files).toEqual(fixture.files);
    expect(resolved.totalBytes).toBe(fixture.totalBytes);
    expect(resolved.commit).toBe(hubServer.commitOf(MODEL, REVISION));
    expect(resolved.needsTrustRemoteCode).toBe(true);
    const listing = hubServer.requests.find((r) => r.kind === 'listing');
    expect(listing?.query).toMatchObject({ Revision: REVISION, Recursive: 'true' });
  });

  it('answers NotFound naming the model for an unknown model', async () => {
    const err = await hub()
      .resolve('qwen/Qwen-404B', 'master')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect(err).toMatchObject({ code: 'NotFound', retryable: false });
    expect((err as Error).message).toContain('qwen/Qwen-404B');
  });

  it('answers Unauthorized without a token when one is required, and works with it (never echoing it)', async () => {
    const token = 'ms-secret-token-123';
    hubServer.faults.requireToken(token);
    const missing = await hub()
      .resolve(MODEL, REVISION)
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'Unauthorized', retryable: false });
    expect((missing as Error).message).toContain('QWENOPS_HUB_TOKEN');
    const wrong = await hub('not-the-token')
      .resolve(MODEL, REVISION)
      .catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'Unauthorized' });
    expect((wrong as Error).message).not.toContain('not-the-token');
    const ok = await hub(token).resolve(MODEL, REVISION);
    expect(ok.files.length).toBeGreaterThan(0);
    expect(hubServer.requests.filter((r) => r.authorized).length).toBeGreaterThan(0);
  });

  it('retries 500s and 429s (with Retry-After) and then succeeds', async () => {
    hubServer.faults.failNext(2, 500, { kind: 'listing' });
    hubServer.faults.failNext(1, 429, { kind: 'listing', retryAfterSeconds: 0 });
    const resolved = await hub().resolve(MODEL, REVISION);
    expect(resolved.files.length).toBe(hubServer.models[0]?.files.length);
    expect(hubServer.requests.filter((r) => r.kind === 'listing').map((r) => r.status)).toEqual([
      500, 500, 429, 200,
    ]);
  });

  it('gives up after maxAttempts with a retryable Unavailable', async () => {
    hubServer.faults.failNext(10, 503, { kind: 'listing' });
    const err = await new ModelScopeHub({
      endpoint: hubServer.endpoint,
      maxAttempts: 3,
      baseDelayMs: 1,
      logger,
    })
      .resolve(MODEL, REVISION)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'Unavailable', retryable: true });
    expect(hubServer.requests.filter((r) => r.kind === 'listing')).toHaveLength(3);
  });

  it('refuses a listing with a traversal path, with no download and no object written', async () => {
    hubServer.faults.traversalPath('../../../etc/cron.d/evil.py');
    const prefix = freshPrefix();
    const err = await (async () => {
      const resolved = await hub().resolve(MODEL, REVISION);
      return downloadModelToStore({
        logger,
        hub: hub(),
        store: minio.store,
        resolved,
        prefix,
        stagingDir: path.join(work, 'staging-traversal'),
      });
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect(err).toMatchObject({ code: 'Invalid', retryable: false });
    expect((err as Error).message).toContain('../../../etc/cron.d/evil.py');
    expect(hubServer.downloads()).toEqual([]);
    expect(await storeKeys(prefix)).toEqual([]);
  });
});

describe('downloadModelToStore: ModelScope -> MinIO', () => {
  it('downloads every file byte-identical, writes the manifest last with provenance, reports progress', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    const progress: DownloadProgress[] = [];
    const manifest = await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-full'),
      progressIntervalMs: 0,
      onProgress: (p) => progress.push(p),
      metadata: { workflowId: 'promote-qwen-1' },
    });
    expect(manifest.files).toEqual(
      resolved.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
    );
    expect(manifest.metadata).toMatchObject({
      model: MODEL,
      revision: REVISION,
      commit: hubServer.commitOf(MODEL, REVISION),
      hub: 'modelscope',
      needsTrustRemoteCode: true,
      workflowId: 'promote-qwen-1',
    });
    for (const f of resolved.files) {
      await expectStoredBytes(`${prefix}/${f.path}`, f.path);
      expect((await minio.store.stat(`${prefix}/${f.path}`))?.sha256).toBe(f.sha256);
    }
    expect(await minio.store.readManifest(prefix)).toEqual(manifest);
    const last = progress.at(-1)!;
    expect(last).toMatchObject({
      bytesDone: resolved.totalBytes,
      bytesTotal: resolved.totalBytes,
      bytesDownloaded: resolved.totalBytes,
      filesDone: 12,
      filesSkipped: 0,
    });
    expect(progress.some((p) => p.currentFile === SHARD)).toBe(true);
    // Downloads name the commit, so a moving branch cannot mix revisions.
    expect(new Set(hubServer.downloads().map((r) => r.query.Revision))).toEqual(
      new Set([hubServer.commitOf(MODEL, REVISION)]),
    );
    expect(await readdir(path.join(work, 'staging-full'))).toEqual([]);
    expect(await tempKeys()).toEqual([]);
    expect(hubServer.maxConcurrentDownloads()).toBeLessThanOrEqual(2);

    // A second run (a retried activity) downloads nothing.
    hubServer.requests.length = 0;
    let againProgress: DownloadProgress | undefined;
    const again = await downloadModelToStore({
      logger,
      onProgress: (p) => {
        againProgress = p;
      },
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-full'),
    });
    expect(again).toEqual(manifest);
    expect(hubServer.downloads()).toEqual([]);
    expect(againProgress).toMatchObject({
      bytesDownloaded: 0,
      filesSkipped: 12,
      bytesDone: resolved.totalBytes,
    });
  });

  it('skips files already in the store when the manifest is missing (resumes a half-done prefix)', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    const done = resolved.files.slice(0, 5);
    for (const f of done) await minio.store.put(`${prefix}/${f.path}`, await fixtureBytes(f.path));
    hubServer.requests.length = 0;
    let skipped = 0;
    await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-half'),
      onProgress: (p) => {
        skipped = p.filesSkipped;
      },
    });
    const downloaded = hubServer.downloads().map((r) => r.filePath);
    expect(downloaded.sort()).toEqual(
      resolved.files
        .slice(5)
        .map((f) => f.path)
        .sort(),
    );
    expect(skipped).toBe(5);
  });

  it('resumes with an HTTP Range after the connection drops mid-file, byte-identical', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    hubServer.faults.dropDownloadOnce(SHARD, 100_000);
    await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-drop'),
      resumeDelayMs: 1,
    });
    const shardRequests = hubServer.downloads(SHARD);
    expect(shardRequests).toHaveLength(2);
    expect(shardRequests[0]?.range).toBeUndefined();
    expect(shardRequests[0]?.bytesSent).toBe(100_000);
    // The resume asks for exactly what is missing (the client may have received fewer bytes than were sent).
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(shardRequests[1]?.range ?? '')?.[1]);
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(100_000);
    expect(shardRequests[1]?.status).toBe(206);
    await expectStoredBytes(`${prefix}/${SHARD}`, SHARD);
  });

  it('a later call (retried activity) resumes the staging file left by a failed one', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    const stagingDir = path.join(work, 'staging-across-calls');
    hubServer.faults.dropDownloadOnce(SHARD, 200_000);
    const first = await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir,
      concurrency: 1,
      maxResumeAttempts: 1,
    }).catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'Unavailable', retryable: true });
    expect(await minio.store.readManifest(prefix)).toBeUndefined();
    expect((await readdir(stagingDir)).some((n) => n.endsWith('.incomplete'))).toBe(true);

    hubServer.requests.length = 0;
    await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir,
      concurrency: 1,
    });
    const resumed = hubServer.downloads(SHARD);
    expect(resumed).toHaveLength(1);
    expect(hubServer.maxConcurrentDownloads()).toBe(1);
    expect(resumed[0]?.range).toMatch(/^bytes=\d+-$/);
    // Files completed by the first call were not fetched again.
    const firstShardIndex = resolved.files.findIndex((f) => f.path === SHARD);
    for (const f of resolved.files.slice(0, firstShardIndex)) expect(hubServer.downloads(f.path)).toEqual([]);
    await expectStoredBytes(`${prefix}/${SHARD}`, SHARD);
    expect(await readdir(stagingDir)).toEqual([]);
  });

  it('still ends byte-identical when the server ignores Range and resends the whole file', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    hubServer.faults.ignoreRange(true);
    hubServer.faults.dropDownloadOnce(SHARD, 150_000);
    await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-norange'),
      resumeDelayMs: 1,
    });
    expect(hubServer.downloads(SHARD).map((r) => r.status)).toEqual([200, 200]);
    await expectStoredBytes(`${prefix}/${SHARD}`, SHARD);
  });

  it('refuses a checksum mismatch: retryable the first time, final when the same bytes come again; nothing stored', async () => {
    hubServer.faults.wrongChecksum(SHARD);
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    const stagingDir = path.join(work, 'staging-checksum');
    const run = () =>
      downloadModelToStore({ logger, hub: hub(), store: minio.store, resolved, prefix, stagingDir }).catch(
        (e: unknown) => e,
      );
    const first = await run();
    expect(first).toBeInstanceOf(HubError);
    expect(first).toMatchObject({ code: 'ChecksumMismatch', retryable: true });
    expect((first as Error).message).toContain(SHARD);
    expect(await minio.store.stat(`${prefix}/${SHARD}`)).toBeUndefined();
    expect(await minio.store.readManifest(prefix)).toBeUndefined();
    // The bad bytes are gone (other files cut short by the failure may keep their partial downloads).
    const shardFile = resolved.files.find((f) => f.path === SHARD)!;
    const staged = await readdir(stagingDir);
    expect(staged).not.toContain(`${stagingFileName(resolved, shardFile)}.incomplete`);
    expect(staged).toContain(`${stagingFileName(resolved, shardFile)}.mismatch`);

    const second = await run();
    expect(second).toMatchObject({ code: 'ChecksumMismatch', retryable: false });
    expect((second as Error).message).toContain('not retrying');
    expect(await tempKeys()).toEqual([]);
  });

  it('stops promptly on abort and leaves no partial object in the store', async () => {
    const resolved = await hub().resolve(MODEL, REVISION);
    const prefix = freshPrefix();
    const controller = new AbortController();
    const err = await downloadModelToStore({
      logger,
      hub: hub(),
      store: minio.store,
      resolved,
      prefix,
      stagingDir: path.join(work, 'staging-abort'),
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (p.currentFile === SHARD && !controller.signal.aborted)
          controller.abort(new Error('operator aborted'));
      },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('operator aborted');
    expect(await minio.store.stat(`${prefix}/${SHARD}`)).toBeUndefined();
    expect(await minio.store.readManifest(prefix)).toBeUndefined();
    expect(await tempKeys()).toEqual([]);
  });

  it('never logs the token, even at trace level and without redaction', async () => {
    const token = 'ms-token-never-logged';
    hubServer.faults.requireToken(token);
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    hubServer.faults.failNext(1, 500, { kind: 'listing' });
    await new ModelScopeHub({ endpoint: hubServer.endpoint, token, baseDelayMs: 1, logger }).resolve(
      MODEL,
      REVISION,
    );
    const logged = lines.join('');
    expect(logged).toContain('retrying');
    expect(logged).not.toContain(token);
  });
});
