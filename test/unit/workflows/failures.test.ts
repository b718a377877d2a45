import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { rootMessage } from '../../../workflows/failures.js';

describe('rootMessage', () => {
  it('keeps the helpful message and its cause, without the generic wrapper', () => {
    const connect = new Error('connect ECONNREFUSED 127.0.0.1:4000');
    const cause = ApplicationFailure.create({
      type: 'ClusterError.Unavailable',
      message: 'cannot reach the sandbox cluster at http://127.0.0.1:4000',
      cause: connect,
    });
    const failure = new ActivityFailure(
      'Activity task failed',
      'shiftCanaryTraffic',
      '7',
      RetryState.MAXIMUM_ATTEMPTS_REACHED,
      'worker-1',
      cause,
    );
    expect(rootMessage(failure)).toBe(
      'cannot reach the sandbox cluster at http://127.0.0.1:4000: connect ECONNREFUSED 127.0.0.1:4000',
    );
  });

  it('does not repeat a message its parent already carries', () => {
    const inner = new Error('Job quantize-x failed: exit 2');
    const outer = ApplicationFailure.create({ message: 'Job quantize-x failed: exit 2', cause: inner });
    expect(rootMessage(outer)).toBe('Job quantize-x failed: exit 2');
  });

  it('handles non-errors', () => {
    expect(rootMessage('plain')).toBe('plain');
  });
});
