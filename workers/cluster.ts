import { runWorkers } from './run.js';

// Production: the 'cluster' task queue alone (one Deployment per queue in k8s/).
await runWorkers({ queues: ['cluster'] });
