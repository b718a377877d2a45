import type { QwenopsConfig } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import type { ClusterBackend } from './port.js';

export type { ClusterBackend } from './port.js';

/** The backend the configuration names; the Kubernetes client loads only when asked for. */
export async function createClusterBackend(
  config: QwenopsConfig['cluster'],
  logger?: Logger,
): Promise<ClusterBackend> {
  switch (config.kind) {
    case 'sandbox': {
      const { SandboxClusterBackend } = await import('./sandbox/backend.js');
      return new SandboxClusterBackend({
        url: config.sandboxUrl,
        tokenFile: config.sandboxTokenFile,
        logger,
      });
    }
    case 'kubernetes': {
      const { createKubernetesBackend } = await import('./kubernetes/index.js');
      return createKubernetesBackend(config, logger);
    }
  }
}
