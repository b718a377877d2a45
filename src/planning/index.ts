export * from './capacity.js';
export * from './gpus.js';
export * from './model-config.js';
