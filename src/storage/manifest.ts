import { z } from 'zod';
import { storageKeySchema } from '../domain/validation.js';
import type { ArtifactStore, Manifest, ManifestFile } from './port.js';
import { StorageError } from './port.js';

// The manifest every complete artifact prefix ends with. Shared by all store adapters.

export const MANIFEST_NAME = 'qwenops-manifest.json';

export function manifestKey(prefix: string): string {
  return `${prefix.replace(/\/+$/, '')}/${MANIFEST_NAME}`;
}

const manifestSchema = z.object({
  version: z.literal(1),
  createdAt: z.string(),
  files: z.array(
    z.object({
      path: storageKeySchema,
      size: z.number().int().min(0),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    }),
  ),
  totalBytes: z.number().int().min(0),
  metadata: z.record(z.string(), z.unknown()),
});

/** The manifest object every adapter writes (same format whatever the store). */
export function buildManifest(files: ManifestFile[], metadata: Record<string, unknown>): Manifest {
  return {
    version: 1,
    createdAt: new Date().toISOString(),
    files,
    totalBytes: files.reduce((sum, f) => sum + f.size, 0),
    metadata,
  };
}

export function parseManifest(key: string, value: unknown): Manifest {
  const result = manifestSchema.safeParse(value);
  if (!result.success) {
    throw new StorageError(
      'NotFound',
      `${key} is not a valid manifest: ${result.error.issues[0]?.message}`,
      false,
    );
  }
  return result.data as Manifest;
}

/** writeManifest for any adapter: the manifest goes in last, atomically like every object. */
export async function writeManifestTo(
  store: Pick<ArtifactStore, 'putJson'>,
  prefix: string,
  files: ManifestFile[],
  metadata: Record<string, unknown>,
): Promise<Manifest> {
  const manifest = buildManifest(files, metadata);
  await store.putJson(manifestKey(prefix), manifest);
  return manifest;
}

/** readManifest for any adapter: undefined when the prefix is incomplete (no manifest yet). */
export async function readManifestFrom(
  store: Pick<ArtifactStore, 'stat' | 'getJson'>,
  prefix: string,
): Promise<Manifest | undefined> {
  const key = manifestKey(prefix);
  if (!(await store.stat(key))) return undefined;
  return parseManifest(key, await store.getJson(key));
}
