import type { WorkflowHandle } from '@temporalio/client';
import type { PipelineStatus } from '../../src/domain/status.js';
import { statusQuery } from '../../workflows/definitions.js';

/** Polls the status query (real time, no skipping) until `predicate` holds, for 30 s at most. */
export async function waitForStatus(
  handle: WorkflowHandle,
  predicate: (s: PipelineStatus) => boolean,
  what: string,
): Promise<PipelineStatus> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await handle.query(statusQuery);
    if (predicate(status)) return status;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(status)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
