import type { AnalysisResult } from './analysis.js';
import type { DecisionGate } from './control.js';

// What the `status` query returns, for the Temporal UI, the CLI and the demo.

export const PROMOTION_STAGES = [
  'resolve',
  'download',
  'quantize',
  'validate',
  'approve-canary',
  'canary',
  'load-test',
  'approve-promote',
  'promote',
  'report',
] as const;
export type PromotionStage = (typeof PROMOTION_STAGES)[number];

export const CANARY_STAGES = [
  'claim',
  'canary',
  'load-test',
  'approve-promote',
  'promote',
  'report',
] as const;
export type CanaryStage = (typeof CANARY_STAGES)[number];

export type StageState =
  | 'pending'
  | 'running'
  | 'waiting'
  | 'succeeded'
  | 'failed'
  | 'skipped'
  | 'compensated';

export interface StageRecord {
  name: string;
  state: StageState;
  startedAt?: string;
  finishedAt?: string;
  /** One line on what happened (artifact, job name, verdict...). */
  detail?: string;
}

export type Outcome = 'running' | 'promoted' | 'rolled_back' | 'rejected' | 'aborted' | 'failed';

export interface TrafficSplit {
  stableRevision?: string;
  canaryRevision?: string;
  canaryPercent: number;
  /** The baseline (a fresh copy of stable started with the canary), when there is one. */
  baselineRevision?: string;
  baselinePercent?: number;
}

export interface PendingDecision {
  /** Which gate waits: before-canary, before-promote, or an inconclusive analysis. */
  gate: DecisionGate;
  since: string;
  deadline: string;
  question: string;
}

export interface CompensationRecord {
  name: string;
  state: 'succeeded' | 'failed';
  detail?: string;
}

export interface PipelineStatus {
  kind: 'promotion' | 'canary';
  workflowId: string;
  model?: string;
  service: { namespace: string; name: string };
  stage: string;
  stages: StageRecord[];
  /** Overall progress, 0..100, and what is happening now. */
  progress: { percent: number; message: string };
  traffic: TrafficSplit;
  lastAnalysis?: AnalysisResult;
  analyses: number;
  paused: boolean;
  pendingDecision?: PendingDecision;
  /** Signals that were ignored (malformed, or not applicable at the time), newest last. */
  ignoredSignals?: string[];
  outcome: Outcome;
  /** Why it was rolled back, aborted, rejected or failed. */
  reason?: string;
  compensations: CompensationRecord[];
  /** Where the report was written, once it was. */
  reportUri?: string;
  artifacts: Record<string, string>;
}
