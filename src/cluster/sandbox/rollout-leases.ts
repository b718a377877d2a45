import { leaseExpired } from '../../domain/lease.js';
import type { ClaimOutcome, RenewOutcome, ServiceLease } from '../port.js';
import { readJsonFile, writeJsonAtomic } from './json-files.js';
import { KeyedLock } from './keyed-lock.js';

// The sandbox's rollout leases, one per service (namespace/name), kept in one JSON file with
// the same rules as the coordination.k8s.io Lease of the Kubernetes backend
// (kubernetes/rollout-lease.ts): live for its duration from its last renewal, renewed only
// by its holder, taken over once expired, broken only at the version an operator saw. Each
// change gets a new version, the compare-and-delete token.

export class SandboxRolloutLeases {
  private leases: Record<string, ServiceLease> = {};
  private version = 0;
  private readonly lock = new KeyedLock();

  constructor(private readonly file: string) {}

  private key(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  /** Reads the stored leases back (at daemon start). */
  async load(): Promise<void> {
    const stored = (await readJsonFile<Record<string, string | ServiceLease>>(this.file)) ?? {};
    // Leases written before they expired were bare holder names: no renewal time, so expired.
    this.leases = Object.fromEntries(
      Object.entries(stored).map(([key, value]) => [
        key,
        typeof value === 'string' ? { holder: value, transitions: 0 } : value,
      ]),
    );
    this.version = Math.max(0, ...Object.values(this.leases).map((l) => Number(l.version ?? 0) || 0));
  }

  private async write(): Promise<void> {
    await writeJsonAtomic(this.file, this.leases);
  }

  private next(lease: Omit<ServiceLease, 'version'>): ServiceLease {
    return { ...lease, version: String(++this.version) };
  }

  /** The lease as stored, live or expired. */
  get(namespace: string, name: string): ServiceLease | undefined {
    return this.leases[this.key(namespace, name)];
  }

  async claim(namespace: string, name: string, owner: string, leaseSeconds: number): Promise<ClaimOutcome> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const current = this.leases[key];
      const now = new Date();
      const nowIso = now.toISOString();
      if (current?.holder === owner) {
        this.leases[key] = this.next({ ...current, renewTime: nowIso, durationSeconds: leaseSeconds });
        await this.write();
        return { claimed: true };
      }
      if (current && current.holder !== '' && !leaseExpired(current, now.getTime(), leaseSeconds))
        return { claimed: false, holder: current.holder };
      this.leases[key] = this.next({
        holder: owner,
        acquireTime: nowIso,
        renewTime: nowIso,
        durationSeconds: leaseSeconds,
        transitions: current ? current.transitions + 1 : 0,
      });
      await this.write();
      return current?.holder ? { claimed: true, previousHolder: current.holder } : { claimed: true };
    });
  }

  /** Extends `owner`'s lease; refuses when it is gone or another owner holds it. */
  async renew(namespace: string, name: string, owner: string, leaseSeconds: number): Promise<RenewOutcome> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const current = this.leases[key];
      if (!current) return { renewed: false };
      if (current.holder !== owner) return { renewed: false, holder: current.holder };
      this.leases[key] = this.next({
        ...current,
        renewTime: new Date().toISOString(),
        durationSeconds: leaseSeconds,
      });
      await this.write();
      return { renewed: true };
    });
  }

  /** Deletes the lease if it is still at `version`; false when it changed or is gone. */
  async break(namespace: string, name: string, version: string): Promise<boolean> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      if (this.leases[key]?.version !== version) return false;
      delete this.leases[key];
      await this.write();
      return true;
    });
  }

  /** Releases the lease if `owner` holds it; releasing someone else's lease does nothing. */
  async release(namespace: string, name: string, owner: string): Promise<void> {
    const key = this.key(namespace, name);
    await this.lock.run(key, async () => {
      if (this.leases[key]?.holder !== owner) return;
      delete this.leases[key];
      await this.write();
    });
  }
}
