import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { storageKeyProblem } from '../../domain/validation.js';
import type { ArtifactStore } from '../../storage/port.js';
import { ClusterError } from '../port.js';

// The sandbox's KServe storage initializer: before a revision's server starts, the model
// under its storageUri (a prefix with a manifest in the artifact store) is copied to local
// disk and every file's sha256 checked, as the init container fills /mnt/models. Copies are
// kept per storageUri and reused; a copy is complete only once its marker file exists.

const COMPLETE_MARKER = '.qwenops-complete';

export class StorageInitializer {
  constructor(
    private readonly modelsDir: string,
    private readonly store: () => Promise<ArtifactStore>,
  ) {}

  /** Local directory holding the model at `storageUri`, downloading it the first time. */
  async localModelDir(storageUri: string, signal?: AbortSignal): Promise<string> {
    const dir = path.join(this.modelsDir, createHash('sha256').update(storageUri).digest('hex').slice(0, 16));
    const marker = await readFile(path.join(dir, COMPLETE_MARKER), 'utf8').catch(() => undefined);
    if (marker === storageUri) return dir;

    const store = await this.store();
    let prefix: string;
    try {
      prefix = store.keyFromUri(storageUri).replace(/\/+$/, '');
    } catch (err) {
      throw new ClusterError(
        'Invalid',
        `storageUri ${storageUri} is not in the sandbox's artifact store: ${(err as Error).message}`,
        false,
      );
    }
    const manifest = await store.readManifest(prefix);
    if (!manifest) {
      throw new ClusterError(
        'Invalid',
        `storageUri ${storageUri} has no manifest: the model was never completely written there`,
        false,
      );
    }
    const temp = `${dir}.tmp-${process.pid}`;
    await rm(temp, { recursive: true, force: true });
    try {
      for (const file of manifest.files) {
        signal?.throwIfAborted();
        const problem = storageKeyProblem(file.path);
        if (problem) throw new ClusterError('Invalid', `manifest file ${file.path} ${problem}`, false);
        const target = path.join(temp, ...file.path.split('/'));
        await mkdir(path.dirname(target), { recursive: true });
        const hash = createHash('sha256');
        const body = await store.get(`${prefix}/${file.path}`);
        body.on('data', (chunk: Buffer) => hash.update(chunk));
        await pipeline(body, createWriteStream(target), { signal });
        const sha256 = hash.digest('hex');
        if (sha256 !== file.sha256) {
          throw new ClusterError(
            'Invalid',
            `${storageUri}/${file.path}: sha256 ${sha256} does not match the manifest's ${file.sha256}`,
            false,
          );
        }
      }
      await writeFile(path.join(temp, COMPLETE_MARKER), storageUri);
      await rm(dir, { recursive: true, force: true });
      await rename(temp, dir);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
    return dir;
  }
}
