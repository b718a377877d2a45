import { msToTs } from '@temporalio/common/lib/time.js';
import { describe, expect, it } from 'vitest';
import { describePendingActivity } from '../../../src/cli/pipeline-client.js';

describe('describePendingActivity', () => {
  it('shows progress of a first attempt', () => {
    expect(
      describePendingActivity({ activityType: { name: 'quantizeModelAwq' }, attempt: 1 }, 'Job running'),
    ).toBe('quantizeModelAwq: Job running');
  });

  it('while waiting to retry, says why the last attempt failed (whole) and when the next starts', () => {
    const line = describePendingActivity(
      {
        activityType: { name: 'shiftCanaryTraffic' },
        attempt: 8,
        maximumAttempts: 10,
        lastFailure: {
          message: 'cannot reach the sandbox cluster at http://127.0.0.1:4000',
          cause: { message: 'connect ECONNREFUSED 127.0.0.1:4000' },
        },
        nextAttemptScheduleTime: msToTs(Date.parse('2026-12-06T21:00:00Z')),
      },
      'started',
    );
    expect(line).toBe(
      'shiftCanaryTraffic (attempt 8 of 10): retrying at 2026-12-06T21:00:00.000Z: last failure: cannot reach the sandbox cluster at http://127.0.0.1:4000: connect ECONNREFUSED 127.0.0.1:4000',
    );
  });

  it('a running retry keeps its progress and the previous failure', () => {
    const line = describePendingActivity(
      { activityType: { name: 'downloadModel' }, attempt: 2, lastFailure: { message: 'hub 503' } },
      '3 of 9 files',
    );
    expect(line).toBe('downloadModel (attempt 2): 3 of 9 files: last failure: hub 503');
  });
});
