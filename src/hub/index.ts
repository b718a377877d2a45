import type { QwenopsConfig } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { LocalMirrorHub } from './local-mirror.js';
import { ModelScopeHub } from './modelscope.js';
import type { ModelHub } from './port.js';

export type { HubFile, ModelHub, ResolvedModel } from './port.js';
export { HubError } from './port.js';

/** The model hub the configuration names. */
export function createModelHub(config: QwenopsConfig['hub'], options: { logger?: Logger } = {}): ModelHub {
  switch (config.kind) {
    case 'modelscope':
      return new ModelScopeHub({ endpoint: config.endpoint, token: config.token, logger: options.logger });
    case 'local':
      return new LocalMirrorHub({ root: config.mirrorDir, logger: options.logger });
  }
}
