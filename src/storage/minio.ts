import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Client, CopyDestinationOptions, CopySourceOptions, S3Error } from 'minio';
import { assertStorageKey } from '../domain/validation.js';
import { readManifestFrom, writeManifestTo } from './manifest.js';
import type { ArtifactStore, ListOptions, Manifest, ManifestFile, ObjectInfo, PutOptions } from './port.js';
import { compareKeys, StorageError } from './port.js';

// The production store: MinIO or any S3 API. Writes stream to a temp key under
// TEMP_PREFIX while hashing, are verified, then copied server-side to the final key with the
// sha256 as user metadata (so stat() answers without reading the object), and the temp key
// is deleted. A reader therefore never sees a half-written or unverified final object.

/** Reserved key space for in-flight uploads; never a final key, never listed. */
export const TEMP_PREFIX = '.qwenops-tmp/';
const SHA256_META = 'sha256';
/** Largest object a single CopyObject may copy; bigger ones are copied part by part. */
const MAX_SINGLE_COPY_BYTES = 5 * 1024 ** 3;
const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
const DELETE_BATCH = 1000;

export interface MinioStoreOptions {
  /** http(s)://host:port of the S3 API. */
  endpoint: string;
  bucket: string;
  region?: string;
  accessKey?: string;
  secretKey?: string;
  /** Multipart part size in bytes (>= 5 MiB); also the most one upload holds in memory. */
  partSize?: number;
}

export class MinioArtifactStore implements ArtifactStore {
  readonly kind = 'minio' as const;
  readonly bucket: string;
  readonly client: Client;
  private readonly region: string;
  private readonly partSize: number;

  constructor(options: MinioStoreOptions) {
    let url: URL;
    try {
      url = new URL(options.endpoint);
    } catch {
      throw new StorageError(
        'InvalidKey',
        `store.endpoint ${JSON.stringify(options.endpoint)} is not a URL`,
        false,
      );
    }
    const useSSL = url.protocol === 'https:';
    this.bucket = options.bucket;
    this.region = options.region ?? 'us-east-1';
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.client = new Client({
      endPoint: url.hostname,
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: options.accessKey ?? '',
      secretKey: options.secretKey ?? '',
      region: this.region,
      pathStyle: true,
    });
  }

  /** A store whose bucket exists (created when missing). */
  static async open(options: MinioStoreOptions): Promise<MinioArtifactStore> {
    const store = new MinioArtifactStore(options);
    await store.ensureBucket();
    return store;
  }

  /** Check-then-create; a concurrent creator winning the race is fine. */
  async ensureBucket(): Promise<void> {
    try {
      if (await this.client.bucketExists(this.bucket)) return;
      await this.client.makeBucket(this.bucket, this.region);
    } catch (err) {
      const code = (err as S3Error).code;
      if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') return;
      throw mapMinioError(err, `bucket ${this.bucket}`);
    }
  }

  private checkKey(key: string): string {
    assertStorageKey(key);
    if (key === TEMP_PREFIX.slice(0, -1) || key.startsWith(TEMP_PREFIX)) {
      throw new StorageError(
        'InvalidKey',
        `key ${JSON.stringify(key)} is in the reserved ${TEMP_PREFIX} space`,
        false,
      );
    }
    return key;
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${this.checkKey(key)}`;
  }

  keyFromUri(uri: string): string {
    const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (!match) throw new StorageError('InvalidKey', `not an s3://bucket/key URI: ${uri}`, false);
    if (match[1] !== this.bucket) {
      throw new StorageError(
        'InvalidKey',
        `${uri} is in bucket ${match[1]}, not this store's bucket ${this.bucket}`,
        false,
      );
    }
    return this.checkKey(match[2] as string);
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const contentType = options.contentType ?? 'application/octet-stream';
    const tempKey = `${TEMP_PREFIX}${randomUUID()}`;
    const source: AsyncIterable<Buffer | string | Uint8Array> =
      typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body;
    let uploading = false;
    try {
      this.checkKey(key);
      uploading = true;
      const { sha256, size } = await this.uploadTemp(tempKey, source, contentType);
      if (options.expectedSha256 && options.expectedSha256 !== sha256) {
        throw new StorageError(
          'ChecksumMismatch',
          `sha256 of ${key} is ${sha256}, expected ${options.expectedSha256}; nothing was written`,
          true,
        );
      }
      await this.copyIntoPlace(tempKey, key, size, sha256, contentType);
      return { key, size, sha256, lastModified: new Date() };
    } catch (err) {
      // A failed source stream must not leave the caller's stream flowing into nowhere.
      if (typeof body !== 'string' && !Buffer.isBuffer(body) && !body.destroyed) body.destroy();
      throw mapMinioError(err, key);
    } finally {
      if (uploading) await this.client.removeObject(this.bucket, tempKey).catch(() => undefined);
    }
  }

  async create(
    key: string,
    body: Buffer | string,
    options: { contentType?: string } = {},
  ): Promise<ObjectInfo | undefined> {
    this.checkKey(key);
    const content = Buffer.from(body);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const headers = {
      'Content-Type': options.contentType ?? 'application/octet-stream',
      'If-None-Match': '*',
      [`x-amz-meta-${SHA256_META}`]: sha256,
    };
    // One PUT is atomic on S3, so no temp key: the condition is on the key itself.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.putObject(this.bucket, key, content, content.length, headers);
        return { key, size: content.length, sha256, lastModified: new Date() };
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'PreconditionFailed') return undefined;
        // 409: another conditional write of this key is in progress; its outcome decides.
        if (code === 'ConditionalRequestConflict' && attempt < 10) {
          await new Promise((r) => setTimeout(r, 20 * attempt));
          continue;
        }
        throw mapMinioError(err, key);
      }
    }
  }

  /**
   * Streams `source` to `tempKey`, hashing as it goes. Small bodies are one PUT; larger ones
   * a multipart upload with one part in flight while the next is read, so memory stays
   * bounded by two parts. Any failure aborts the multipart upload (no orphaned parts).
   */
  private async uploadTemp(
    tempKey: string,
    source: AsyncIterable<Buffer | string | Uint8Array>,
    contentType: string,
  ): Promise<{ sha256: string; size: number }> {
    const hash = createHash('sha256');
    const headers = { 'Content-Type': contentType };
    let size = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let uploadId: string | undefined;
    let nextPart = 1;
    const etags: { part: number; etag: string }[] = [];
    let inflight: Promise<void> = Promise.resolve();
    let partError: unknown;

    const sendPart = async (payload: Buffer): Promise<void> => {
      await inflight;
      if (partError) throw partError;
      uploadId ??= await this.client.initiateNewMultipartUpload(this.bucket, tempKey, headers);
      const part = nextPart++;
      const id = uploadId;
      // Stored, not awaited: the next part is read from the source meanwhile. The rejection
      // is captured so it is never unhandled and surfaces at the next await.
      inflight = this.client
        .uploadPart(
          { bucketName: this.bucket, objectName: tempKey, uploadID: id, partNumber: part, headers: {} },
          payload,
        )
        .then(
          (result) => {
            etags.push({ part, etag: result.etag });
          },
          (err: unknown) => {
            partError = err;
          },
        );
    };

    try {
      for await (const raw of source) {
        const chunk =
          typeof raw === 'string' ? Buffer.from(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
        hash.update(chunk);
        size += chunk.length;
        pending.push(chunk);
        pendingBytes += chunk.length;
        while (pendingBytes >= this.partSize) {
          const all = Buffer.concat(pending, pendingBytes);
          const rest = all.subarray(this.partSize);
          pending = rest.length > 0 ? [rest] : [];
          pendingBytes = rest.length;
          await sendPart(all.subarray(0, this.partSize));
        }
      }
      const tail = Buffer.concat(pending, pendingBytes);
      if (uploadId === undefined) {
        await this.client.putObject(this.bucket, tempKey, tail, tail.length, headers);
      } else {
        if (tail.length > 0) await sendPart(tail);
        await inflight;
        if (partError) throw partError;
        etags.sort((a, b) => a.part - b.part);
        await this.client.completeMultipartUpload(this.bucket, tempKey, uploadId, etags);
      }
      return { sha256: hash.digest('hex'), size };
    } catch (err) {
      await inflight;
      if (uploadId !== undefined) {
        await this.client.abortMultipartUpload(this.bucket, tempKey, uploadId).catch(() => undefined);
      }
      throw err;
    }
  }

  private async copyIntoPlace(
    tempKey: string,
    key: string,
    size: number,
    sha256: string,
    contentType: string,
  ): Promise<void> {
    const source = new CopySourceOptions({ Bucket: this.bucket, Object: tempKey });
    const metadata = { [SHA256_META]: sha256 };
    if (size <= MAX_SINGLE_COPY_BYTES) {
      const dest = new CopyDestinationOptions({
        Bucket: this.bucket,
        Object: key,
        UserMetadata: metadata,
        MetadataDirective: 'REPLACE',
        Headers: { 'Content-Type': contentType },
      });
      await this.client.copyObject(source, dest);
    } else {
      // Multipart copy (UploadPartCopy) sets metadata when the upload is created.
      const dest = new CopyDestinationOptions({
        Bucket: this.bucket,
        Object: key,
        UserMetadata: metadata,
        Headers: { 'Content-Type': contentType },
      });
      await this.client.composeObject(dest, [source]);
    }
  }

  putJson(key: string, value: unknown): Promise<ObjectInfo> {
    return this.put(key, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json' });
  }

  async get(key: string): Promise<Readable> {
    this.checkKey(key);
    try {
      return await this.client.getObject(this.bucket, key);
    } catch (err) {
      throw mapMinioError(err, key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    const stream = await this.get(key);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
    } catch (err) {
      throw mapMinioError(err, key);
    }
    return Buffer.concat(chunks);
  }

  async getJson<T = unknown>(key: string): Promise<T> {
    const buffer = await this.getBuffer(key);
    try {
      return JSON.parse(buffer.toString('utf8')) as T;
    } catch (err) {
      throw new StorageError('NotFound', `${key} is not valid JSON: ${(err as Error).message}`, false);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.checkKey(key);
    try {
      const info = await this.client.statObject(this.bucket, key);
      const sha256 = info.metaData?.[SHA256_META];
      return {
        key,
        size: info.size,
        sha256: typeof sha256 === 'string' && sha256 !== '' ? sha256 : undefined,
        lastModified: info.lastModified,
      };
    } catch (err) {
      const mapped = mapMinioError(err, key);
      if (mapped instanceof StorageError && mapped.code === 'NotFound') return undefined;
      throw mapped;
    }
  }

  /**
   * Same semantics as the fs store: `prefix` names a "directory" (everything under
   * `prefix/`), or a single object when an object has exactly that key. Temp keys never show.
   */
  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const trimmed = prefix.replace(/\/+$/, '');
    let listPrefix = '';
    if (trimmed !== '') {
      this.checkKey(trimmed);
      const single = await this.stat(trimmed);
      if (single) {
        if (options.startAfter === undefined || compareKeys(single.key, options.startAfter) > 0) yield single;
        return;
      }
      listPrefix = `${trimmed}/`;
    }
    // StartAfter: the server lists from the cursor (UTF-8 byte order), page by page.
    const stream = this.client.listObjectsV2(this.bucket, listPrefix, true, options.startAfter ?? '');
    try {
      for await (const item of stream as AsyncIterable<{
        name?: string;
        size: number;
        lastModified?: Date;
      }>) {
        if (!item.name || item.name.startsWith(TEMP_PREFIX)) continue;
        // The listing carries no user metadata; stat() gives the sha256 when a caller needs it.
        yield { key: item.name, size: item.size, lastModified: item.lastModified };
      }
    } catch (err) {
      throw mapMinioError(err, `list ${prefix}`);
    }
  }

  async delete(key: string): Promise<void> {
    this.checkKey(key);
    try {
      await this.client.removeObject(this.bucket, key);
    } catch (err) {
      const mapped = mapMinioError(err, key);
      if (mapped instanceof StorageError && mapped.code === 'NotFound') return;
      throw mapped;
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    const keys: string[] = [];
    for await (const object of this.list(prefix)) keys.push(object.key);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      let failures: { Code?: string; Key?: string; Message?: string }[];
      try {
        failures = (await this.client.removeObjects(this.bucket, batch)) as typeof failures;
      } catch (err) {
        throw mapMinioError(err, `delete ${prefix}`);
      }
      const real = failures.filter((f) => f && (f.Code || f.Message) && f.Code !== 'NoSuchKey');
      if (real.length > 0) {
        const first = real[0];
        throw new StorageError(
          'Unavailable',
          `deleting ${real.length} object(s) under ${prefix} failed, first ${first?.Key}: ${first?.Code} ${first?.Message}`,
          true,
        );
      }
    }
    return keys.length;
  }

  writeManifest(prefix: string, files: ManifestFile[], metadata: Record<string, unknown>): Promise<Manifest> {
    return writeManifestTo(this, prefix, files, metadata);
  }

  readManifest(prefix: string): Promise<Manifest | undefined> {
    return readManifestFrom(this, prefix);
  }
}

const RETRYABLE_S3_CODES = new Set([
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
  'OperationTimedOut',
  'XMinioServerNotInitialized',
  'XMinioReadQuorum',
  'XMinioWriteQuorum',
]);
const RETRYABLE_NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * S3/MinIO and network errors as StorageError: missing objects are NotFound; overload, 5xx
 * and dropped connections are retryable Unavailable; credentials problems are
 * non-retryable. Anything else (aborts, StorageError, validation) passes through unchanged.
 */
export function mapMinioError(err: unknown, what: string): unknown {
  if (err instanceof StorageError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = (err as Error)?.message ?? String(err);
  if (typeof code === 'string' && (RETRYABLE_NET_CODES.has(code) || code.startsWith('UND_ERR'))) {
    return new StorageError('Unavailable', `object store unreachable on ${what}: ${code} ${message}`, true, {
      cause: err,
    });
  }
  if (err instanceof S3Error) {
    if (code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchBucket') {
      return new StorageError('NotFound', `no object ${what} (${code})`, false, { cause: err });
    }
    if (typeof code === 'string' && RETRYABLE_S3_CODES.has(code)) {
      return new StorageError(
        'Unavailable',
        `object store busy or failing on ${what}: ${code} ${message}`,
        true,
        {
          cause: err,
        },
      );
    }
    if (code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
      return new StorageError(
        'Unavailable',
        `object store refused ${what}: ${code} (check store.accessKey/secretKey and bucket policy)`,
        false,
        { cause: err },
      );
    }
    return err;
  }
  return err;
}
