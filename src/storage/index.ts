import type { QwenopsConfig } from '../config/config.js';
import { FsArtifactStore } from './fs.js';
import { MinioArtifactStore } from './minio.js';
import type { ArtifactStore } from './port.js';

export type { ArtifactStore } from './port.js';

/** The store the configuration names. */
export async function createArtifactStore(config: QwenopsConfig['store']): Promise<ArtifactStore> {
  switch (config.kind) {
    case 'fs':
      return new FsArtifactStore(config.dir);
    case 'minio':
      return MinioArtifactStore.open({
        endpoint: config.endpoint,
        bucket: config.bucket,
        region: config.region,
        accessKey: config.accessKey,
        secretKey: config.secretKey,
      });
  }
}
