import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import { LocalMirrorHub } from '../../../src/hub/local-mirror.js';
import type { ResolvedModel } from '../../../src/hub/port.js';
import {
  downloadModelToStore,
  manifestMatchesResolved,
  stagingFileName,
} from '../../../src/services/model-download.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import type { Manifest } from '../../../src/storage/port.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const resolved: ResolvedModel = {
  model: 'qwen/Qwen-7B-Chat',
  revision: 'master',
  commit: 'c'.repeat(40),
  files: [
    { path: 'config.json', size: 10, sha256: A },
    { path: 'model-00001-of-00001.safetensors', size: 20 },
  ],
  totalBytes: 30,
  needsTrustRemoteCode: false,
};
const manifest: Manifest = {
  version: 1,
  createdAt: '2026-01-01T00:00:00Z',
  files: [
    { path: 'config.json', size: 10, sha256: A },
    { path: 'model-00001-of-00001.safetensors', size: 20, sha256: B },
  ],
  totalBytes: 30,
  metadata: { model: 'qwen/Qwen-7B-Chat', revision: 'master', commit: 'c'.repeat(40) },
};

describe('manifestMatchesResolved', () => {
  it('matches the same files from the same model and commit', () => {
    expect(manifestMatchesResolved(manifest, resolved)).toBe(true);
  });

  it('does not match another commit, a changed size or sha256, or a different file set', () => {
    expect(manifestMatchesResolved(manifest, { ...resolved, commit: 'd'.repeat(40) })).toBe(false);
    expect(
      manifestMatchesResolved(
        { ...manifest, metadata: { ...manifest.metadata, model: 'qwen/Other' } },
        resolved,
      ),
    ).toBe(false);
    const files = resolved.files.map((f) => (f.path === 'config.json' ? { ...f, sha256: B } : f));
    expect(manifestMatchesResolved(manifest, { ...resolved, files })).toBe(false);
    const sized = resolved.files.map((f) => (f.path === 'config.json' ? { ...f, size: 11 } : f));
    expect(manifestMatchesResolved(manifest, { ...resolved, files: sized })).toBe(false);
    expect(manifestMatchesResolved(manifest, { ...resolved, files: resolved.files.slice(0, 1) })).toBe(false);
  });

  it('compares revisions when the hub has no commit', () => {
    const noCommit = { ...resolved, commit: undefined };
    const byRevision = { ...manifest, metadata: { model: 'qwen/Qwen-7B-Chat', revision: 'master' } };
    expect(manifestMatchesResolved(byRevision, noCommit)).toBe(true);
    expect(manifestMatchesResolved(byRevision, { ...noCommit, revision: 'v2' })).toBe(false);
  });
});

describe('stagingFileName', () => {
  it('is stable for the same file and differs across commits and paths', () => {
    const file = resolved.files[0]!;
    expect(stagingFileName(resolved, file)).toBe(stagingFileName({ ...resolved }, { ...file }));
    expect(stagingFileName({ ...resolved, commit: 'd'.repeat(40) }, file)).not.toBe(
      stagingFileName(resolved, file),
    );
    expect(stagingFileName(resolved, resolved.files[1]!)).not.toBe(stagingFileName(resolved, file));
    expect(stagingFileName(resolved, file)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('downloadModelToStore input validation', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-dl-validate-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names every bad field and touches neither store nor staging directory', async () => {
    const store = new FsArtifactStore(path.join(dir, 'store'));
    const bad = {
      ...resolved,
      model: '../escape',
      files: [
        { path: '../../etc/passwd', size: 1 },
        { path: 'ok.bin', size: -1, sha256: 'XYZ' },
      ],
    } as ResolvedModel;
    const err = await downloadModelToStore({
      hub: new LocalMirrorHub({ root: dir }),
      store,
      resolved: bad,
      prefix: '/abs/prefix',
      stagingDir: path.join(dir, 'staging'),
      concurrency: 0,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputValidationError);
    const fields = (err as InputValidationError).issues.map((i) => i.path);
    expect(fields).toEqual(
      expect.arrayContaining([
        'prefix',
        'concurrency',
        'resolved.model',
        'resolved.files.0.path',
        'resolved.files.1.size',
        'resolved.files.1.sha256',
      ]),
    );
    expect(await readdir(dir)).toEqual([]);
  });
});
