import { type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { heartbeating, toTemporalFailure } from '../../../activities/support.js';
import { CatalogedError, OperationCancelledError } from '../../../src/domain/failures.js';
import { ServingLeaseLostError } from '../../../src/services/serving-rollout.js';

// The one activity kit: heartbeats carry progress and a checkpoint that a retry resumes
// from; errors reach Temporal through one map.

interface Checkpoint {
  done: number;
}

describe('heartbeating', () => {
  it('heartbeats progress and checkpoints, and hands a retry the last checkpoint', async () => {
    const first = new MockActivityEnvironment();
    const beats: Array<{ progress: string; checkpoint?: Checkpoint }> = [];
    first.on('heartbeat', (d: unknown) => beats.push(d as (typeof beats)[number]));
    const seen = await first.run(() =>
      heartbeating<Checkpoint | undefined, Checkpoint>(async (hooks) => {
        hooks.onProgress('2 of 4 done');
        hooks.checkpoint({ done: 2 });
        return hooks.resumeFrom;
      }),
    );
    expect(seen).toBeUndefined();
    expect(beats.at(-1)).toMatchObject({ progress: '2 of 4 done', checkpoint: { done: 2 } });

    // A retry after a crash: Temporal hands back the last heartbeat's details.
    const retry = new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) });
    const resumed = await retry.run(() =>
      heartbeating<Checkpoint | undefined, Checkpoint>(async (hooks) => hooks.resumeFrom),
    );
    expect(resumed).toEqual({ done: 2 });
  });

  it('reports a cancellation the work noticed itself as cancelled, not failed', async () => {
    const env = new MockActivityEnvironment();
    const err = await env
      .run(() =>
        heartbeating(async () => {
          throw new OperationCancelledError('load test stopped: cancelled');
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('toTemporalFailure', () => {
  it('keeps structured details of classified errors', () => {
    const lost = new ServingLeaseLostError(
      { namespace: 'ns', name: 'svc', deploymentMode: 'Serverless' },
      'wf-1',
      'wf-2',
    );
    const failure = toTemporalFailure(lost) as ApplicationFailure;
    expect(failure.type).toBe('ServingLeaseLost');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.details).toEqual([{ holder: 'wf-2' }]);
  });

  it('takes retryability of a catalogued error from the catalog', () => {
    const unreachable = toTemporalFailure(
      new CatalogedError('ServiceUnreachable', 'no URL'),
    ) as ApplicationFailure;
    expect(unreachable.nonRetryable).toBe(false);
    const busy = toTemporalFailure(new CatalogedError('ServiceBusy', 'held')) as ApplicationFailure;
    expect(busy.nonRetryable).toBe(true);
  });
});
