import { Counter, Gauge } from 'prom-client';
import type { AnalysisResult } from '../domain/analysis.js';
import { metricsRegistry } from './metrics.js';

// Gauges and counters about the pipelines, recorded by the activities (never by workflow
// code, which must stay deterministic) in the process registry (metrics.ts), which the
// worker serves next to the Temporal SDK's own metrics (metrics-server.ts). The alert rules
// in k8s/observability/alerts.yaml read the deadline and re-index freshness gauges.
//
// Label cardinality stays bounded: namespace/service (one series per served model),
// verdict (3 values), metric (the analysis checks' names), knowledge_base (one per table).
// Only the step deadline carries workflow_id, and its series is removed when the rollout
// ends (promote, rollback or release of the serving target).

/** Slack added to a canary step's own duration before the step counts as late. */
export const CANARY_STEP_DEADLINE_MARGIN_SECONDS = 120;

/** The serving target a metric is about (a ServingRef's namespace and name). */
export interface ServingTarget {
  namespace: string;
  name: string;
}

export const canaryTrafficPercent = new Gauge({
  name: 'qwenops_canary_traffic_percent',
  help: 'Percent of the traffic the canary revision gets, as of the last traffic change this worker made (0 after promote or rollback).',
  labelNames: ['namespace', 'service'] as const,
  registers: [metricsRegistry],
});

export const canaryStepDeadline = new Gauge({
  name: 'qwenops_canary_step_deadline_timestamp_seconds',
  help: 'Unix time by which the current canary step (traffic shift or analysis window) should be over; removed when the rollout ends.',
  labelNames: ['namespace', 'service', 'workflow_id'] as const,
  registers: [metricsRegistry],
});

export const canaryAnalysisVerdicts = new Counter({
  name: 'qwenops_canary_analysis_verdicts_total',
  help: 'Canary analysis steps, by verdict (pass, fail, inconclusive).',
  labelNames: ['namespace', 'service', 'verdict'] as const,
  registers: [metricsRegistry],
});

export const canaryJudgePValue = new Gauge({
  name: 'qwenops_canary_judge_p_value',
  help: 'One-sided p-value of "the canary is worse" of the latest analysis, for each check the statistical judge tested.',
  labelNames: ['namespace', 'service', 'metric'] as const,
  registers: [metricsRegistry],
});

export const knowledgeReindexLastSuccess = new Gauge({
  name: 'qwenops_knowledge_reindex_last_success_timestamp_seconds',
  help: 'Unix time the last re-index of the knowledge base finished successfully.',
  labelNames: ['knowledge_base'] as const,
  registers: [metricsRegistry],
});

export const knowledgeReindexRows = new Gauge({
  name: 'qwenops_knowledge_reindex_rows',
  help: 'Rows in the live table of the knowledge base when its last successful re-index finished.',
  labelNames: ['knowledge_base'] as const,
  registers: [metricsRegistry],
});

/** The workflow each (namespace, service) deadline series belongs to: one rollout per service at a time. */
const deadlineOwners = new Map<string, string>();

const serviceLabels = (target: ServingTarget) => ({ namespace: target.namespace, service: target.name });
const serviceKey = (target: ServingTarget) => `${target.namespace}/${target.name}`;
const nowSeconds = (now: Date) => now.getTime() / 1000;

/** After a successful traffic change: the canary's share (0 once promoted or rolled back). */
export function recordCanaryTraffic(target: ServingTarget, canaryPercent: number): void {
  canaryTrafficPercent.set(serviceLabels(target), canaryPercent);
}

/**
 * A canary step starts and should be over within `durationSeconds` (the analysis window,
 * or the traffic shift's timeout): its deadline is now + that + the margin. A deadline left
 * by an earlier rollout of the same service (in this process) is dropped.
 */
export function recordCanaryStepStarted(
  target: ServingTarget,
  workflowId: string,
  durationSeconds: number,
  now: Date = new Date(),
): void {
  const key = serviceKey(target);
  const previous = deadlineOwners.get(key);
  if (previous !== undefined && previous !== workflowId) {
    canaryStepDeadline.remove({ ...serviceLabels(target), workflow_id: previous });
  }
  deadlineOwners.set(key, workflowId);
  canaryStepDeadline.set(
    { ...serviceLabels(target), workflow_id: workflowId },
    Math.round(nowSeconds(now) + durationSeconds + CANARY_STEP_DEADLINE_MARGIN_SECONDS),
  );
}

/** The rollout ended (promoted, rolled back, target released): its step deadline goes. */
export function recordCanaryRolloutEnded(target: ServingTarget, workflowId: string): void {
  canaryStepDeadline.remove({ ...serviceLabels(target), workflow_id: workflowId });
  const key = serviceKey(target);
  if (deadlineOwners.get(key) === workflowId) deadlineOwners.delete(key);
}

/** A successful promote or rollback: no canary traffic left, and no step deadline. */
export function recordCanaryConcluded(target: ServingTarget, workflowId: string): void {
  recordCanaryTraffic(target, 0);
  recordCanaryRolloutEnded(target, workflowId);
}

/** An analysis step's result: its verdict, and the p-value of each check that has one. */
export function recordCanaryAnalysis(target: ServingTarget, result: AnalysisResult): void {
  canaryAnalysisVerdicts.inc({ ...serviceLabels(target), verdict: result.verdict });
  for (const check of result.checks) {
    const p = check.statistics?.p;
    if (p !== undefined && Number.isFinite(p)) {
      canaryJudgePValue.set({ ...serviceLabels(target), metric: check.metric }, p);
    }
  }
}

/** A re-index finished successfully; `rows` is the live table's row count then, when known. */
export function recordKnowledgeReindexSucceeded(
  knowledgeBase: string,
  rows?: number,
  now: Date = new Date(),
): void {
  knowledgeReindexLastSuccess.set({ knowledge_base: knowledgeBase }, nowSeconds(now));
  if (rows !== undefined && Number.isFinite(rows))
    knowledgeReindexRows.set({ knowledge_base: knowledgeBase }, rows);
}
