import { assertStorageKey } from '../../domain/validation.js';
import type { ArtifactStore } from '../../storage/port.js';
import type { KnowledgeSource, ListSourceOptions, SourceEntry } from './port.js';

// Documents under a prefix of the artifact store (MinIO / any S3 API, or the fs store).
// Keys are relative to the prefix.

export class ObjectStoreSource implements KnowledgeSource {
  readonly prefix: string;
  readonly description: string;

  constructor(
    private readonly store: ArtifactStore,
    prefix: string,
  ) {
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    if (trimmed) assertStorageKey(trimmed, 'source prefix');
    this.prefix = trimmed ? `${trimmed}/` : '';
    this.description = store.uri(this.prefix || '.').replace(/\/\.$/, '/');
  }

  async *list(options: ListSourceOptions = {}): AsyncIterable<SourceEntry> {
    const startAfter = options.startAfter === undefined ? undefined : this.prefix + options.startAfter;
    for await (const object of this.store.list(this.prefix, { startAfter })) {
      if (!object.key.startsWith(this.prefix)) continue;
      const key = object.key.slice(this.prefix.length);
      if (key === '' || key.split('/').some((segment) => segment.startsWith('.'))) continue;
      yield { key, size: object.size };
    }
  }

  read(key: string): Promise<Buffer> {
    return this.store.getBuffer(this.prefix + assertStorageKey(key, 'source key'));
  }

  async exists(key: string): Promise<boolean> {
    return (await this.store.stat(this.prefix + assertStorageKey(key, 'source key'))) !== undefined;
  }

  uri(key: string): string {
    return this.store.uri(this.prefix + key);
  }
}
