// The artifact store port: model weights, Job results, reports, audit records.
// Adapters: ./minio (production, also any S3 API) and ./fs (embedded default).
//
// Contract: keys are validated (no traversal); writes are atomic (temp key, then copy or
// rename), so a reader never sees a half-written object; checksums are sha256 hex.

import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  /** sha256 hex of the content, when the store recorded it at write time. */
  sha256?: string;
  lastModified?: Date;
}

export interface PutOptions {
  contentType?: string;
  /** Expected sha256; the write fails (and leaves nothing) when the content differs. */
  expectedSha256?: string;
}

export interface ListOptions {
  /** Resume after this key (exclusive): the listing's cursor. */
  startAfter?: string;
}

/**
 * The listing order every adapter agrees on: byte-wise over the UTF-8 encoding (what S3
 * ListObjectsV2 returns), which is Unicode code point order. JavaScript's `<` compares
 * UTF-16 code units and differs for characters above U+FFFF, hence this function.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (U+D800..U+DFFF) encodes a code point above U+FFFF: above every BMP
    // character, which the code unit order gets wrong only against U+E000..U+FFFF.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? (y >= 0xe000 ? 1 : x - y) : x >= 0xe000 ? -1 : x - y;
    return x - y;
  }
  return a.length - b.length;
}

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

/** Written last under a prefix: its presence means every listed file is complete and verified. */
export interface Manifest {
  version: 1;
  createdAt: string;
  files: ManifestFile[];
  totalBytes: number;
  /** Free-form provenance: model id, revision, workflow id, quantization settings. */
  metadata: Record<string, unknown>;
}

export interface ArtifactStore {
  readonly kind: 'minio' | 'fs';
  /** URI that Jobs and serving use to reach the key: s3://bucket/key or file:///abs/path. */
  uri(key: string): string;
  /** Inverse of uri(); throws when the URI is not in this store. */
  keyFromUri(uri: string): string;
  put(key: string, body: Buffer | string | Readable, options?: PutOptions): Promise<ObjectInfo>;
  putJson(key: string, value: unknown): Promise<ObjectInfo>;
  /**
   * Writes a small object only when no object has `key` (S3 `If-None-Match: *`, a hard link
   * on the filesystem): the store's compare-and-set. Undefined when the key already exists,
   * so of several writers racing for one key exactly one gets its ObjectInfo.
   */
  create(
    key: string,
    body: Buffer | string,
    options?: Pick<PutOptions, 'contentType'>,
  ): Promise<ObjectInfo | undefined>;
  get(key: string): Promise<Readable>;
  getBuffer(key: string): Promise<Buffer>;
  getJson<T = unknown>(key: string): Promise<T>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /**
   * Objects under `prefix`, in byte-wise (UTF-8) key order as S3 lists them; with
   * `startAfter` (a whole key, like S3's StartAfter) only the keys after it.
   */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  deletePrefix(prefix: string): Promise<number>;
  writeManifest(prefix: string, files: ManifestFile[], metadata: Record<string, unknown>): Promise<Manifest>;
  readManifest(prefix: string): Promise<Manifest | undefined>;
}

export class StorageError extends Error {
  override readonly name = 'StorageError';
  /** "StorageError.<code>"; retryability is decided per error. */
  get failureType(): string {
    return `${this.name}.${this.code}`;
  }
  constructor(
    readonly code: 'NotFound' | 'ChecksumMismatch' | 'InvalidKey' | 'Unavailable',
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
