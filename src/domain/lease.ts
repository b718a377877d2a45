// Expiry arithmetic of the leases qwenops takes (the rollout lease on a serving target, a
// coordination.k8s.io Lease or the sandbox's equivalent). Pure: times come in, a verdict
// comes out, so the same rules hold in every adapter and are unit-tested once.
//
// A lease is live while renewTime + duration is in the future. The holder renews it every
// third of its duration, so two missed renewals still leave it live and a holder that died
// (a workflow terminated from the UI, a worker killed) loses it one duration after its last
// renewal at most. Clocks: the renewer writes its clock, the claimer compares with its own;
// NTP keeps workers within well under a second of each other, against durations of minutes.

/** Default duration of the rollout lease (config cluster.rolloutLeaseSeconds). */
export const DEFAULT_ROLLOUT_LEASE_SECONDS = 120;
/** Bounds a port accepts; the config asks for at least 15 s (tests use a few seconds). */
export const MIN_LEASE_SECONDS = 1;
export const MAX_LEASE_SECONDS = 3600;

export interface LeaseTimes {
  /** Last renewal; absent on a lease that was never renewed (acquireTime counts then). */
  renewTime?: Date | string;
  acquireTime?: Date | string;
  /** Absent on leases written before leases expired: `fallbackSeconds` applies. */
  durationSeconds?: number;
}

function millis(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * When the lease stops being live, ms since the epoch. A lease with no time at all (never
 * renewed, never acquired) is already expired: nothing says anyone is alive behind it.
 */
export function leaseExpiresAt(lease: LeaseTimes, fallbackSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS): number {
  const since = millis(lease.renewTime) ?? millis(lease.acquireTime);
  if (since === undefined) return Number.NEGATIVE_INFINITY;
  const duration =
    lease.durationSeconds !== undefined && lease.durationSeconds > 0
      ? lease.durationSeconds
      : fallbackSeconds;
  return since + duration * 1000;
}

/** Expired at `nowMs`: the instant renewTime + duration is reached, the lease is free. */
export function leaseExpired(
  lease: LeaseTimes,
  nowMs: number,
  fallbackSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
): boolean {
  return leaseExpiresAt(lease, fallbackSeconds) <= nowMs;
}

/** Seconds left before expiry at `nowMs` (0 when expired). */
export function leaseSecondsLeft(
  lease: LeaseTimes,
  nowMs: number,
  fallbackSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
): number {
  const left = leaseExpiresAt(lease, fallbackSeconds) - nowMs;
  return left > 0 ? Math.ceil(left / 1000) : 0;
}

/** How often the holder renews: a third of the duration, at least every second. */
export function renewIntervalMs(durationSeconds: number): number {
  return Math.max(1000, Math.floor((durationSeconds * 1000) / 3));
}

/** Refuses durations outside [MIN, MAX] seconds or not whole. */
export function checkLeaseSeconds(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < MIN_LEASE_SECONDS || seconds > MAX_LEASE_SECONDS) {
    throw new RangeError(
      `lease duration must be a whole number of seconds in ${MIN_LEASE_SECONDS}..${MAX_LEASE_SECONDS}, got ${seconds}`,
    );
  }
  return seconds;
}
