// Every workflow the workers register (the bundle entrypoint).
export { canaryRelease } from './canary-release.js';
export { loadTest } from './load-test.js';
export { promoteModel } from './promote-model.js';
export { reindexKnowledgeBase } from './reindex-knowledge-base.js';
