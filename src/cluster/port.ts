// The cluster port: what the pipelines need from "a cluster", whether that is the
// embedded sandbox (local processes) or Kubernetes + KServe. Services and activities
// depend on these interfaces only; adapters live in ./sandbox and ./kubernetes.
//
// Contract every adapter keeps, so that a retried or replayed activity is safe:
// - names are chosen by the caller (deterministic from workflow id + stage);
// - create is check-then-create and AlreadyExists adopts the existing object;
// - waits take a deadline and an AbortSignal; aborting a wait does not delete anything
//   (the caller decides whether cancellation deletes);
// - errors are ClusterError with a `retryable` flag.

import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../domain/serving-revision.js';

export type JobTemplateName = 'download' | 'quantize' | 'evaluate';

export interface SecretEnvRef {
  /** Environment variable inside the Job container. */
  name: string;
  secretName: string;
  key: string;
}

export interface GpuJobSpec {
  namespace: string;
  /** DNS-1123 label, deterministic from workflow id + stage. */
  name: string;
  template: JobTemplateName;
  workflowId: string;
  stage: string;
  /** Template-specific arguments, e.g. ["--input-uri", "s3://...", "--result-uri", "s3://..."]. */
  args: string[];
  env: Record<string, string>;
  secretEnv: SecretEnvRef[];
  gpus: number;
  gpuType?: string;
  activeDeadlineSeconds: number;
  backoffLimit: number;
  ttlSecondsAfterFinished: number;
  labels: Record<string, string>;
}

export type JobPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface JobStatus {
  namespace: string;
  name: string;
  phase: JobPhase;
  /** Pod (or process) attempts started so far. */
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  /** Why it failed, or what it is doing. */
  message?: string;
  /** Progress the Job reported about itself, when it does. */
  progress?: { percent?: number; message?: string };
}

export interface WaitOptions {
  /** Absolute deadline, epoch ms. */
  deadline: number;
  signal?: AbortSignal;
  /** Called whenever the observed state changes; activities heartbeat from it. */
  onProgress?: (message: string) => void;
}

export interface ClusterJobs {
  /** Creates the Job, or adopts the existing one with the same name (adopted: true). */
  createJob(spec: GpuJobSpec): Promise<{ status: JobStatus; adopted: boolean }>;
  getJob(namespace: string, name: string): Promise<JobStatus | undefined>;
  /** Resolves with the terminal status (Succeeded or Failed); rejects on deadline or abort. */
  waitForJob(namespace: string, name: string, options: WaitOptions): Promise<JobStatus>;
  /** The last lines the Job's pod/process wrote. */
  jobLogs(namespace: string, name: string, tailLines: number): Promise<string>;
  /** Deletes the Job and its pods (background propagation). False when it did not exist. */
  deleteJob(namespace: string, name: string): Promise<boolean>;
}

export interface CanaryOptions {
  /** Start a fresh copy of the stable revision beside the canary, with the same weight. */
  baseline?: boolean;
}

/** The rollout lease of a service (a coordination.k8s.io Lease on Kubernetes). */
export interface ServiceLease {
  holder: string;
  /** ISO times. */
  acquireTime?: string;
  renewTime?: string;
  durationSeconds?: number;
  /** How many times the lease changed hands (takeovers of expired leases). */
  transitions: number;
  /** Opaque version for compare-and-delete (the Lease's resourceVersion). */
  version?: string;
}

export type ClaimOutcome =
  | {
      claimed: true /** Set when an expired lease of another owner was taken over. */;
      previousHolder?: string;
    }
  | { claimed: false; holder: string };

export type RenewOutcome = { renewed: true } | { renewed: false; holder?: string };

export interface ClusterServing {
  getService(ref: ServingRef): Promise<ServingStatus | undefined>;
  /**
   * Takes the rollout lease on a service for one workflow, so two rollouts never drive the
   * same service at once. The lease lasts `leaseSeconds` (default
   * DEFAULT_ROLLOUT_LEASE_SECONDS) from its last renewal. Idempotent
   * for the same owner (it renews); refuses with the holder while another owner's lease is
   * live; takes over an expired one and names its previous holder. Of two concurrent
   * claimers exactly one wins (compare-and-swap on the stored lease).
   */
  claimService(ref: ServingRef, owner: string, leaseSeconds?: number): Promise<ClaimOutcome>;
  /**
   * Extends `owner`'s lease by `leaseSeconds` from now. Idempotent; refuses (renewed: false,
   * with the holder if any) when the lease is gone or another owner took it over, and never
   * re-creates it: a lease broken by an operator stays broken.
   */
  renewService(ref: ServingRef, owner: string, leaseSeconds?: number): Promise<RenewOutcome>;
  releaseService(ref: ServingRef, owner: string): Promise<void>;
  /** The rollout lease as stored, live or expired; undefined when there is none. */
  getServiceLease(ref: ServingRef): Promise<ServiceLease | undefined>;
  /**
   * Deletes the lease if it is still exactly `expected` (same holder and version): an
   * operator breaking a stale lease never deletes one a new holder took in between.
   * Returns false when it changed or is gone.
   */
  breakServiceLease(ref: ServingRef, expected: ServiceLease): Promise<boolean>;
  /** Creates the service serving `revision` at 100 %, or adopts it if it already serves that storageUri. */
  deployService(ref: ServingRef, revision: ServingRevisionSpec): Promise<ServingStatus>;
  /**
   * Deletes the service and every revision it runs (a private validation service, never a
   * production one: callers hold no lease on it). False when it did not exist.
   */
  deleteService(ref: ServingRef): Promise<boolean>;
  /**
   * Rolls out `revision` as the canary with `percent` of traffic; adopts an identical canary.
   * With `baseline`, a fresh copy of the stable revision starts beside it with
   * baselinePercentFor(percent) of traffic (refused with Unsupported where the mode cannot
   * route to three revisions).
   */
  startCanary(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    percent: number,
    options?: CanaryOptions,
  ): Promise<ServingStatus>;
  /** Sets the canary's share (and the baseline's, when there is one). */
  setCanaryTraffic(ref: ServingRef, percent: number): Promise<ServingStatus>;
  /** Makes the canary the stable revision with 100 % of traffic; a baseline is removed. */
  promoteCanary(ref: ServingRef): Promise<ServingStatus>;
  /** Sends 100 % back to the previous rolled-out revision and removes the canary (and baseline). No analysis. */
  rollbackCanary(ref: ServingRef): Promise<ServingStatus>;
  /** Waits until the service is Ready with the canary at `canaryPercent` (undefined = no canary). */
  waitForTraffic(
    ref: ServingRef,
    canaryPercent: number | undefined,
    options: WaitOptions,
  ): Promise<ServingStatus>;
}

export interface ClusterBackend extends ClusterJobs, ClusterServing {
  readonly kind: 'sandbox' | 'kubernetes';
  close(): Promise<void>;
}

export type ClusterErrorCode =
  | 'NotFound'
  | 'Conflict'
  | 'Forbidden'
  | 'Invalid'
  | 'Unsupported'
  | 'Timeout'
  | 'Unavailable'
  | 'Aborted';

export class ClusterError extends Error {
  override readonly name = 'ClusterError';
  /** "ClusterError.<code>"; retryability is decided per error. */
  get failureType(): string {
    return `${this.name}.${this.code}`;
  }
  constructor(
    readonly code: ClusterErrorCode,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
