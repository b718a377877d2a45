import { defaultPayloadConverter, type PayloadCodec } from '@temporalio/common';
import type { AnalysisResult } from '../domain/analysis.js';

// Every canary analysis of a run, read back from its workflow history: the results of the
// analyseCanaryStep activity, in order (the status query keeps only the last one). Payloads
// are decoded with the run's codec (AES-GCM when a key is set).

export const ANALYSIS_ACTIVITY = 'analyseCanaryStep';

/** The parts of a history event this reads (temporal.api.history.v1.IHistoryEvent). */
export interface HistoryEventLike {
  eventId?: unknown;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null;
  activityTaskCompletedEventAttributes?: {
    scheduledEventId?: unknown;
    result?: { payloads?: unknown[] | null } | null;
  } | null;
}

const key = (id: unknown) => (id === undefined || id === null ? '' : String(id));

/** The AnalysisResults a history holds, oldest first. Undecodable results are reported, not thrown. */
export async function analysesFromHistory(
  events: readonly HistoryEventLike[],
  codec?: PayloadCodec,
): Promise<{ analyses: AnalysisResult[]; undecodable: number }> {
  const analysisEvents = new Set<string>();
  const analyses: AnalysisResult[] = [];
  let undecodable = 0;
  for (const event of events) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name === ANALYSIS_ACTIVITY) analysisEvents.add(key(event.eventId));
    const completed = event.activityTaskCompletedEventAttributes;
    if (!completed || !analysisEvents.has(key(completed.scheduledEventId))) continue;
    const payloads = completed.result?.payloads ?? [];
    try {
      const decoded = codec ? await codec.decode(payloads as never) : payloads;
      const value = defaultPayloadConverter.fromPayload(decoded[0] as never) as AnalysisResult;
      if (value && typeof value === 'object' && typeof value.verdict === 'string') analyses.push(value);
      else undecodable += 1;
    } catch {
      undecodable += 1;
    }
  }
  return { analyses, undecodable };
}
