// Activity contracts: the input/output types of every activity a workflow schedules.
// Workflows import these as types only (erased at build), so they never pull activity
// code or adapters into the workflow bundle.

import type { CanaryAnalysisRequest } from '../src/analysis/port.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import type { EvaluationResult, QuantizeResult } from '../src/domain/job-results.js';
import type { LoadTestProfile } from '../src/domain/promotion-spec.js';
import type { SafetyGatePolicy } from '../src/domain/safety-gate.js';
import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../src/domain/serving-revision.js';
import type { PromotionReportInput, ReportLoadTest } from '../src/services/promotion-report.js';
import type { SafetyGateReport } from '../src/services/safety-gate.js';

export interface ResolveModelInput {
  model: string;
  revision: string;
}

export interface ResolvedModelSummary {
  model: string;
  revision: string;
  commit?: string;
  fileCount: number;
  totalBytes: number;
  needsTrustRemoteCode: boolean;
}

export interface DownloadModelInput {
  workflowId: string;
  model: string;
  revision: string;
  actor: string;
}

export interface DownloadedModel {
  /** URI of the prefix holding the model and its manifest (what Jobs and serving read). */
  uri: string;
  fileCount: number;
  totalBytes: number;
  /** True when every file was already in the store (a retried or repeated promotion). */
  reused: boolean;
}

export interface GpuJobRun {
  jobName: string;
  namespace: string;
  /** True when an existing Job with the deterministic name was adopted, not created. */
  adopted: boolean;
  resultUri: string;
}

export interface QuantizeModelInput {
  workflowId: string;
  /** Deterministic Job name chosen by the workflow (it also registers the clean-up). */
  jobName: string;
  model: string;
  revision: string;
  sourceUri: string;
  quantization: {
    method: 'awq' | 'rtn';
    bits: number;
    groupSize: number;
    zeroPoint: boolean;
    kernel: string;
    calibrationSamples: number;
  };
  gpuType: string;
  timeoutSeconds: number;
  actor: string;
}

export interface EvaluateModelInput {
  workflowId: string;
  jobName: string;
  model: string;
  baselineUri: string;
  candidateUri: string;
  samples: number;
  /** Items the quality gate needs; the Job refuses an evaluation set smaller than this. */
  minSamples?: number;
  gpuType: string;
  timeoutSeconds: number;
  actor: string;
}

export interface DeleteGpuJobInput {
  workflowId: string;
  jobName: string;
  actor: string;
}

export interface MarkCandidateRejectedInput {
  workflowId: string;
  candidateUri: string;
  reason: string;
  actor: string;
}

export interface ServingActionInput {
  workflowId: string;
  ref: ServingRef;
  actor: string;
}

export interface ShiftTrafficInput extends ServingActionInput {
  revision: ServingRevisionSpec;
  percent: number;
  timeoutSeconds: number;
  /** Start the canary with a baseline beside it (a fresh copy of stable, same weight). */
  baseline?: boolean;
}

export interface ClaimResult {
  claimed: boolean;
  holder?: string;
  /** Set when an expired lease of another workflow was taken over. */
  previousHolder?: string;
  /** Duration of the lease; the holder must renew it (holdServingTarget) within that. */
  leaseSeconds?: number;
}

export interface RenewResult {
  leaseSeconds: number;
  renewedAt: string;
}

export interface AnalyseStepInput extends ServingActionInput {
  step: number;
  canaryPercent: number;
  windowSeconds: number;
  minSamples: number;
  probe: CanaryAnalysisRequest['probe'];
  slo: CanaryAnalysisRequest['slo'];
}

/** Load test through the service's traffic split (the activity resolves the URL). */
export interface LoadTestInput extends ServingActionInput {
  profile: LoadTestProfile;
}

/** A load test's verdict and headline figures (what the promotion keeps in its history). */
export type LoadTestOutcome = ReportLoadTest;

export type { PromotionReportInput };

export interface PromotionActivities {
  resolveModel(input: ResolveModelInput): Promise<ResolvedModelSummary>;
  downloadModel(input: DownloadModelInput): Promise<DownloadedModel>;
  quantizeModelAwq(input: QuantizeModelInput): Promise<GpuJobRun & { result: QuantizeResult }>;
  evaluateModelQuality(input: EvaluateModelInput): Promise<GpuJobRun & { result: EvaluationResult }>;
  deleteGpuJob(input: DeleteGpuJobInput): Promise<boolean>;
  markCandidateRejected(input: MarkCandidateRejectedInput): Promise<void>;
  writePromotionReport(input: PromotionReportInput): Promise<{ uri: string }>;
}

export interface ServingActivities {
  claimServingTarget(input: ServingActionInput): Promise<ClaimResult>;
  releaseServingTarget(input: ServingActionInput): Promise<void>;
  /**
   * Renews the rollout lease once (idempotent). Fails non-retryably with type
   * ServingLeaseLost (src/domain/failures.ts) when another workflow took the lease over or an operator broke it.
   */
  renewServingTarget(input: ServingActionInput): Promise<RenewResult>;
  /**
   * Holds the rollout lease: renews it every third of its duration, heartbeating, until
   * cancelled (then it returns the renewal count). Fails non-retryably with type
   * ServingLeaseLost as soon as a renewal is refused. Start it right after a successful
   * claim and cancel it before releasing.
   */
  holdServingTarget(input: ServingActionInput): Promise<{ renewals: number }>;
  describeServing(input: ServingActionInput): Promise<ServingStatus | null>;
  ensureStableService(
    input: ServingActionInput & { revision: ServingRevisionSpec; timeoutSeconds: number },
  ): Promise<ServingStatus>;
  shiftCanaryTraffic(input: ShiftTrafficInput): Promise<ServingStatus>;
  rollbackCanary(
    input: ServingActionInput & { reason: string; timeoutSeconds: number },
  ): Promise<ServingStatus>;
  promoteCanary(input: ServingActionInput & { timeoutSeconds: number }): Promise<ServingStatus>;
  analyseCanaryStep(input: AnalyseStepInput): Promise<AnalysisResult>;
  runLoadTest(input: LoadTestInput): Promise<LoadTestOutcome>;
}

/** The private service a promotion serves its candidate on for the safety gate. */
export interface ValidationServiceInput {
  workflowId: string;
  actor: string;
  /** The worker names the service (config cluster.validationNamespace, workflow id). */
  deploymentMode: ServingRef['deploymentMode'];
}

export interface ServeValidationCandidateInput extends ValidationServiceInput {
  revision: ServingRevisionSpec;
  timeoutSeconds: number;
}

export interface ValidationCandidate {
  ref: ServingRef;
  /** OpenAI API root of the candidate. */
  baseUrl: string;
  revision: string;
}

export interface RunSafetyGateInput {
  workflowId: string;
  baseUrl: string;
  servedModelName: string;
  /** The validation revision answering, for the report. */
  servedBy: string;
  policy: SafetyGatePolicy;
}

export type { SafetyGateReport };

export interface SafetyActivities {
  serveValidationCandidate(input: ServeValidationCandidateInput): Promise<ValidationCandidate>;
  runSafetyGate(input: RunSafetyGateInput): Promise<SafetyGateReport>;
  /** Deletes the validation service; false when it was already gone. Idempotent. */
  removeValidationCandidate(input: ValidationServiceInput): Promise<boolean>;
}
