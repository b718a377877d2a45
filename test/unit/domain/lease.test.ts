import { describe, expect, it } from 'vitest';
import {
  checkLeaseSeconds,
  DEFAULT_ROLLOUT_LEASE_SECONDS,
  leaseExpired,
  leaseExpiresAt,
  leaseSecondsLeft,
  renewIntervalMs,
} from '../../../src/domain/lease.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');

describe('lease expiry arithmetic', () => {
  it('expires renewTime + duration, not before', () => {
    const lease = { renewTime: new Date(T0).toISOString(), durationSeconds: 120 };
    expect(leaseExpiresAt(lease)).toBe(T0 + 120_000);
    expect(leaseExpired(lease, T0)).toBe(false);
    expect(leaseExpired(lease, T0 + 119_999)).toBe(false);
    expect(leaseExpired(lease, T0 + 120_000)).toBe(true);
    expect(leaseExpired(lease, T0 + 600_000)).toBe(true);
  });

  it('counts from the last renewal, not from the acquisition', () => {
    const lease = {
      acquireTime: new Date(T0).toISOString(),
      renewTime: new Date(T0 + 300_000).toISOString(),
      durationSeconds: 60,
    };
    expect(leaseExpired(lease, T0 + 330_000)).toBe(false);
    expect(leaseExpired(lease, T0 + 360_000)).toBe(true);
  });

  it('takes Date objects (client-node MicroTime) as well as ISO strings', () => {
    expect(leaseExpiresAt({ renewTime: new Date(T0), durationSeconds: 10 })).toBe(T0 + 10_000);
  });

  it('falls back to acquireTime when never renewed, and to the default duration when none is stored', () => {
    const legacy = { acquireTime: new Date(T0).toISOString() };
    expect(leaseExpiresAt(legacy)).toBe(T0 + DEFAULT_ROLLOUT_LEASE_SECONDS * 1000);
    expect(leaseExpiresAt(legacy, 30)).toBe(T0 + 30_000);
    expect(leaseExpiresAt({ acquireTime: new Date(T0).toISOString(), durationSeconds: 0 }, 30)).toBe(
      T0 + 30_000,
    );
  });

  it('treats a lease with no time at all, or an unparsable one, as expired', () => {
    expect(leaseExpired({}, T0)).toBe(true);
    expect(leaseExpired({ renewTime: 'not a time', durationSeconds: 120 }, T0)).toBe(true);
  });

  it('reports whole seconds left, rounded up, and 0 once expired', () => {
    const lease = { renewTime: new Date(T0).toISOString(), durationSeconds: 120 };
    expect(leaseSecondsLeft(lease, T0)).toBe(120);
    expect(leaseSecondsLeft(lease, T0 + 119_001)).toBe(1);
    expect(leaseSecondsLeft(lease, T0 + 120_000)).toBe(0);
    expect(leaseSecondsLeft(lease, T0 + 999_000)).toBe(0);
  });

  it('renews every third of the duration, at least every second', () => {
    expect(renewIntervalMs(120)).toBe(40_000);
    expect(renewIntervalMs(3)).toBe(1000);
    expect(renewIntervalMs(1)).toBe(1000);
    // Two renewals can be missed and the lease is still live at the third.
    expect(3 * renewIntervalMs(120)).toBeLessThanOrEqual(120_000);
  });

  it('accepts whole durations within bounds only', () => {
    expect(checkLeaseSeconds(120)).toBe(120);
    expect(() => checkLeaseSeconds(0)).toThrow(RangeError);
    expect(() => checkLeaseSeconds(1.5)).toThrow(RangeError);
    expect(() => checkLeaseSeconds(3601)).toThrow(RangeError);
  });
});
