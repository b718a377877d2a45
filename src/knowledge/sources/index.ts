import type { KnowledgeSourceSpec } from '../../domain/knowledge.js';
import type { ArtifactStore } from '../../storage/port.js';
import { DirectorySource } from './directory.js';
import { ObjectStoreSource } from './object-store.js';
import type { KnowledgeSource } from './port.js';

export type { KnowledgeSource, ListSourceOptions, SourceEntry } from './port.js';

/**
 * The source a request names; an object-store source needs the artifact store. A worker
 * passes `directoryRoots` (config.confinement.knowledgeRoots): a directory source must lie
 * under one of them. Without it (the CLI indexing as its own user) any directory is taken.
 */
export function createKnowledgeSource(
  spec: KnowledgeSourceSpec,
  artifactStore?: ArtifactStore,
  options: { directoryRoots?: readonly string[] } = {},
): KnowledgeSource {
  switch (spec.kind) {
    case 'directory':
      return new DirectorySource(spec.path, { allowedRoots: options.directoryRoots });
    case 'object-store':
      if (!artifactStore)
        throw new Error('an object-store knowledge source needs an artifact store (config store.*)');
      return new ObjectStoreSource(artifactStore, spec.prefix);
  }
}
