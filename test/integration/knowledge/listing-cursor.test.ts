import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectorySource } from '../../../src/knowledge/sources/directory.js';
import { ObjectStoreSource } from '../../../src/knowledge/sources/object-store.js';
import type { KnowledgeSource } from '../../../src/knowledge/sources/port.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { compareKeys } from '../../../src/storage/port.js';
import { type RunningMinio, startMinio } from '../../support/minio.js';
import { stopAll } from '../../support/processes.js';

// The streaming listing's cursor: every source (MinIO through S3 StartAfter, the fs store's
// sorted walk, the directory source) lists the same keys in the same order (UTF-8 byte
// order, as S3), and listing after any key yields exactly the rest of the full listing.
// Keys cover Chinese names, nested prefixes, a name that sorts between a directory and its
// children ("a-b" < "a/..." in byte order), a character above U+FFFF against U+FF01 (where
// JavaScript's `<` disagrees with byte order), and hidden entries that must not show.

const KEYS = [
  'a.md',
  'a-b.md',
  'a/b.md',
  'a/c/d.md',
  'a/c/e.md',
  'a0.md',
  '制度/人事/年假.md',
  '制度/人事/病假.md',
  '制度/财务/报销.md',
  '制度/财务.md',
  '制度-2024/总则.md',
  'docs/😀.md',
  'docs/！.md',
  'docs/z.md',
  'docs/deep/er/er/x.txt',
  'B.md',
  'b.md',
  '中文.txt',
  'zz/a.md',
];
const HIDDEN = ['.git/config', 'docs/.DS_Store', '.hidden.md'];

let minio: RunningMinio;
let fsRoot: string;
let dirRoot: string;
let sources: Record<string, KnowledgeSource>;

const collect = async (source: KnowledgeSource, startAfter?: string) => {
  const keys: string[] = [];
  for await (const entry of source.list(startAfter === undefined ? {} : { startAfter })) keys.push(entry.key);
  return keys;
};

beforeAll(async () => {
  fsRoot = await mkdtemp(path.join(os.tmpdir(), 'qwenops-cursor-fs-'));
  dirRoot = await mkdtemp(path.join(os.tmpdir(), 'qwenops-cursor-dir-'));
  minio = await startMinio();
  const fsStore = new FsArtifactStore(fsRoot);
  for (const key of [...KEYS, ...HIDDEN]) {
    const body = `# ${key}\n\n内容 ${key}`;
    await minio.store.put(`kb/${key}`, body);
    await fsStore.put(`kb/${key}`, body);
    const file = path.join(dirRoot, ...key.split('/'));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, body);
  }
  // Outside the prefix: never listed, whatever the cursor.
  await minio.store.put('kb-other/x.md', 'x');
  await fsStore.put('kb-other/x.md', 'x');
  await minio.store.put('ka/x.md', 'x');
  await fsStore.put('ka/x.md', 'x');
  sources = {
    minio: new ObjectStoreSource(minio.store, 'kb'),
    fs: new ObjectStoreSource(fsStore, 'kb'),
    directory: new DirectorySource(dirRoot),
  };
}, 120_000);

afterAll(async () => {
  await minio?.stop();
  await stopAll();
  for (const dir of [fsRoot, dirRoot]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe('listing with a resumable cursor', () => {
  const expected = [...KEYS].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

  it('compareKeys is UTF-8 byte order', () => {
    const sorted = [...KEYS].sort(compareKeys);
    expect(sorted).toEqual(expected);
    // The case JavaScript's default order gets wrong.
    expect(compareKeys('😀', '！')).toBeGreaterThan(0);
    expect('😀' < '！').toBe(true);
  });

  it('every source lists the same keys in S3 order', async () => {
    for (const [name, source] of Object.entries(sources)) {
      expect({ name, keys: await collect(source) }).toEqual({ name, keys: expected });
    }
  });

  it('listing after each key yields exactly the rest of the full listing', async () => {
    for (const [name, source] of Object.entries(sources)) {
      for (let i = 0; i < expected.length; i++) {
        const after = expected[i] as string;
        expect({ name, after, keys: await collect(source, after) }).toEqual({
          name,
          after,
          keys: expected.slice(i + 1),
        });
      }
    }
  });

  it('listing after a key that is not there (a deleted source, a bare prefix) resumes in order', async () => {
    const cursors = [
      '',
      'a/',
      'a/c',
      'a/c/',
      'a/c/d',
      'a.',
      'docs/deep',
      '制度',
      '制度/',
      '制度/人',
      '😀',
      '～',
      'zzz',
    ];
    for (const [name, source] of Object.entries(sources)) {
      for (const after of cursors) {
        expect({ name, after, keys: await collect(source, after) }).toEqual({
          name,
          after,
          keys: expected.filter((k) => compareKeys(k, after) > 0),
        });
      }
    }
  });

  it('a listing split at arbitrary cursors concatenates to the full listing', async () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (const [name, source] of Object.entries(sources)) {
      for (let round = 0; round < 5; round++) {
        const pieces: string[] = [];
        let cursor: string | undefined;
        for (;;) {
          const take = 1 + Math.floor(random() * 5);
          const page: string[] = [];
          for await (const entry of source.list(cursor === undefined ? {} : { startAfter: cursor })) {
            page.push(entry.key);
            if (page.length === take) break;
          }
          if (page.length === 0) break;
          pieces.push(...page);
          cursor = page[page.length - 1];
        }
        expect({ name, round, pieces }).toEqual({ name, round, pieces: expected });
      }
    }
  });
});
