import { log, proxyActivities } from '@temporalio/workflow';

// The workflow of tracing.test.ts: one activity, one workflow log line.

export interface TracedActivities {
  tracedGreeting(name: string): Promise<string>;
}

const { tracedGreeting } = proxyActivities<TracedActivities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 1 },
});

export async function tracedWorkflow(name: string): Promise<string> {
  log.info('traced workflow started', { name });
  return await tracedGreeting(name);
}
