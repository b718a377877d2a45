import { runWorkers } from './run.js';

// Production: the 'knowledge' task queue alone (re-index activities; needs the database).
await runWorkers({ queues: ['knowledge'] });
