// Where documents come from. A source lists its documents in a stable order, byte-wise
// (UTF-8) by key as S3 lists (compareKeys in src/storage/port.ts), streaming, and resumes
// after a key (the cursor a batch hands to the next one), reads one document's bytes, and
// says whether one still exists (the deleted-source sweep double-checks before deleting).

export interface SourceEntry {
  /** Relative key, "/"-separated; stored as the chunk's `source`. */
  key: string;
  size: number;
}

export interface ListSourceOptions {
  /** A key of this source (relative, as in SourceEntry.key): the listing resumes after it. */
  startAfter?: string;
}

export interface KnowledgeSource {
  /** For logs and reports: dir:/abs/path or s3://bucket/prefix/. */
  readonly description: string;
  /** Every document in key order; with `startAfter`, only those after that key (exclusive). */
  list(options?: ListSourceOptions): AsyncIterable<SourceEntry>;
  read(key: string): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  /** The URI of one document, kept in chunk metadata. */
  uri(key: string): string;
}
