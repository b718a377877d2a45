import { runWorkers } from './run.js';

// Development: every task queue in one process (what `qwenops dev` and `make demo` start).
await runWorkers({
  queues: ['default', 'gpuJobs', 'cluster', 'knowledge'],
  serviceName: 'qwenops-worker-all-in-one',
});
