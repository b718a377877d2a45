// Where documents come from. A source lists its documents in a stable order (so a batch
// can resume at a position), reads one document's bytes, and says whether one still
// exists (the deleted-source sweep double-checks before deleting anything).

export interface SourceEntry {
  /** Relative key, "/"-separated; stored as the chunk's `source`. */
  key: string;
  size: number;
}

export interface KnowledgeSource {
  /** For logs and reports: dir:/abs/path or s3://bucket/prefix/. */
  readonly description: string;
  list(): AsyncIterable<SourceEntry>;
  read(key: string): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  /** The URI of one document, kept in chunk metadata. */
  uri(key: string): string;
}
