import { runWorkers } from './run.js';

// Production: the 'default' task queue alone (one Deployment per queue in k8s/).
await runWorkers({ queues: ['default'] });
