import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { assertStorageKey } from '../domain/validation.js';
import { readManifestFrom, writeManifestTo } from './manifest.js';
import type { ArtifactStore, ListOptions, Manifest, ManifestFile, ObjectInfo, PutOptions } from './port.js';
import { compareKeys, StorageError } from './port.js';
import { walkSorted } from './walk.js';

// The embedded default store: a directory. Writes go to a temp file in the same
// directory and are renamed into place (atomic on POSIX), and a sidecar file keeps the
// sha256 so stat() can answer without re-reading the object.

const SIDECAR_SUFFIX = '.qwenops-sha256';
const TEMP_MARK = '.qwenops-tmp-';

export class FsArtifactStore implements ArtifactStore {
  readonly kind = 'fs' as const;
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private pathOf(key: string): string {
    assertStorageKey(key);
    const full = path.resolve(this.root, key);
    // Belt and braces: the key check already refuses traversal.
    if (full !== this.root && !full.startsWith(this.root + path.sep)) {
      throw new StorageError('InvalidKey', `key ${JSON.stringify(key)} escapes the store root`, false);
    }
    return full;
  }

  uri(key: string): string {
    return pathToFileURL(this.pathOf(key)).href;
  }

  keyFromUri(uri: string): string {
    if (!uri.startsWith('file://')) throw new StorageError('InvalidKey', `not a file:// URI: ${uri}`, false);
    const full = fileURLToPath(uri);
    const rel = path.relative(this.root, full);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new StorageError('InvalidKey', `${uri} is outside the store root ${this.root}`, false);
    }
    return assertStorageKey(rel.split(path.sep).join('/'));
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true });
    const temp = path.join(path.dirname(target), `${TEMP_MARK}${randomUUID()}`);
    const hash = createHash('sha256');
    let size = 0;
    const source =
      typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, counter, createWriteStream(temp));
      const sha256 = hash.digest('hex');
      if (options.expectedSha256 && options.expectedSha256 !== sha256) {
        throw new StorageError(
          'ChecksumMismatch',
          `sha256 of ${key} is ${sha256}, expected ${options.expectedSha256}`,
          true,
        );
      }
      await writeAtomically(`${target}${SIDECAR_SUFFIX}`, sha256);
      await rename(temp, target);
      return { key, size, sha256, lastModified: new Date() };
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async create(key: string, body: Buffer | string): Promise<ObjectInfo | undefined> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true });
    const content = Buffer.from(body);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const temp = path.join(path.dirname(target), `${TEMP_MARK}${randomUUID()}`);
    await writeFile(temp, content);
    try {
      // link(2) fails with EEXIST when the name is taken, atomically: the compare-and-set.
      await link(temp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw err;
    } finally {
      await rm(temp, { force: true });
    }
    await writeAtomically(`${target}${SIDECAR_SUFFIX}`, sha256);
    return { key, size: content.length, sha256, lastModified: new Date() };
  }

  putJson(key: string, value: unknown): Promise<ObjectInfo> {
    return this.put(key, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json' });
  }

  async get(key: string): Promise<Readable> {
    const p = this.pathOf(key);
    await this.requireExists(key, p);
    return createReadStream(p);
  }

  async getBuffer(key: string): Promise<Buffer> {
    const p = this.pathOf(key);
    await this.requireExists(key, p);
    return readFile(p);
  }

  async getJson<T = unknown>(key: string): Promise<T> {
    const buffer = await this.getBuffer(key);
    try {
      return JSON.parse(buffer.toString('utf8')) as T;
    } catch (err) {
      throw new StorageError('NotFound', `${key} is not valid JSON: ${(err as Error).message}`, false);
    }
  }

  private async requireExists(key: string, p: string): Promise<void> {
    const info = await stat(p).catch(() => undefined);
    if (!info?.isFile()) throw new StorageError('NotFound', `no object ${key} in ${this.root}`, false);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const p = this.pathOf(key);
    const info = await stat(p).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const sha256 = await readFile(`${p}${SIDECAR_SUFFIX}`, 'utf8').catch(() => undefined);
    return { key, size: info.size, sha256: sha256?.trim(), lastModified: info.mtime };
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const base = prefix.replace(/\/+$/, '');
    const start = base === '' ? this.root : this.pathOf(base);
    const info = await stat(start).catch(() => undefined);
    if (!info) return;
    if (info.isFile()) {
      if (options.startAfter !== undefined && compareKeys(prefix, options.startAfter) <= 0) return;
      const single = await this.stat(prefix);
      if (single) yield single;
      return;
    }
    const keyPrefix = base === '' ? '' : `${base}/`;
    // startAfter is a whole key: relative to the walked directory, or before/after all of it.
    let startAfter: string | undefined;
    if (options.startAfter !== undefined) {
      if (options.startAfter.startsWith(keyPrefix)) startAfter = options.startAfter.slice(keyPrefix.length);
      else if (compareKeys(options.startAfter, keyPrefix) > 0) return;
    }
    const entries = walkSorted(start, {
      startAfter,
      skip: (entry) =>
        entry.isFile() && (entry.name.endsWith(SIDECAR_SUFFIX) || entry.name.startsWith(TEMP_MARK)),
    });
    for await (const entry of entries) {
      const object = await this.stat(keyPrefix + entry.key);
      if (object) yield object;
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.pathOf(key);
    await unlink(p).catch(() => undefined);
    await unlink(`${p}${SIDECAR_SUFFIX}`).catch(() => undefined);
  }

  async deletePrefix(prefix: string): Promise<number> {
    let count = 0;
    for await (const object of this.list(prefix)) {
      await this.delete(object.key);
      count++;
    }
    return count;
  }

  writeManifest(prefix: string, files: ManifestFile[], metadata: Record<string, unknown>): Promise<Manifest> {
    return writeManifestTo(this, prefix, files, metadata);
  }

  readManifest(prefix: string): Promise<Manifest | undefined> {
    return readManifestFrom(this, prefix);
  }
}

async function writeAtomically(file: string, content: string): Promise<void> {
  const temp = `${file}.${randomUUID()}`;
  await pipeline(Readable.from([content]), createWriteStream(temp));
  await rename(temp, file);
}
