// The model hub port: where model weights come from. Adapters: ./modelscope (ModelScope's
// HTTP file-listing and download API) and ./local-mirror (a directory laid out as
// <root>/<owner>/<name>/<revision>/..., the embedded default).

import type { Readable } from 'node:stream';

export interface HubFile {
  /** Path inside the model repository, validated (no traversal). */
  path: string;
  size: number;
  /** sha256 hex when the hub publishes it (ModelScope does for LFS files). */
  sha256?: string;
}

export interface ResolvedModel {
  model: string;
  /** What the user asked for (branch, tag or commit). */
  revision: string;
  /** The immutable commit the revision pointed at when resolved, when the hub has one. */
  commit?: string;
  files: HubFile[];
  totalBytes: number;
  /** True when the repository ships its own modeling code (*.py), as Qwen does. */
  needsTrustRemoteCode: boolean;
}

export interface ModelHub {
  readonly kind: 'modelscope' | 'local';
  resolve(model: string, revision: string, signal?: AbortSignal): Promise<ResolvedModel>;
  /** Streams one file from `offset` (resume); the caller verifies size and sha256. */
  openFile(resolved: ResolvedModel, path: string, offset: number, signal?: AbortSignal): Promise<Readable>;
}

export class HubError extends Error {
  override readonly name = 'HubError';
  /** "HubError.<code>"; retryability is decided per error. */
  get failureType(): string {
    return `${this.name}.${this.code}`;
  }
  constructor(
    readonly code: 'NotFound' | 'Unauthorized' | 'Invalid' | 'Unavailable' | 'ChecksumMismatch',
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
