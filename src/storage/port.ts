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
  get(key: string): Promise<Readable>;
  getBuffer(key: string): Promise<Buffer>;
  getJson<T = unknown>(key: string): Promise<T>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
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
