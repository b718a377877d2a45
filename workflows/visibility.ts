// What workflows may put into search attributes. Search attributes are indexed plain text:
// the payload codec never sees them. When the workers encrypt payloads (QWENOPS_CODEC_KEY),
// a failure reason (which can quote Job logs, URIs or user input) must stay out of them, so
// QwenopsReason is reduced to a summary (outcome, stage, failure type) and the full text
// stays in the encrypted failure and status.
//
// Workflows cannot read the environment, so the worker tells them: with a codec key it adds
// the interceptor module workflows/encrypted-visibility.ts to the workflow bundle
// (src/temporal/data-converter.ts, workflowInterceptorModules), whose factory runs when each
// workflow starts, before workflow code, and calls markPayloadsEncrypted(). The value is
// fixed per bundle, so it is deterministic on replay as long as the codec setting is
// unchanged (which decoding the history needs anyway).

import { upsertSearchAttributes } from '@temporalio/workflow';
import { clipUtf8 } from '../src/domain/units.js';
import { SEARCH_ATTRIBUTE_MAX_BYTES, SEARCH_ATTRIBUTES } from './definitions.js';

let payloadsEncrypted = false;

/** Called by the encrypted-visibility interceptor module only. */
export function markPayloadsEncrypted(): void {
  payloadsEncrypted = true;
}

/** The QwenopsReason value: the reason, or only `summary` when payloads are encrypted. */
export function searchableReason(reason: string, summary: string): string {
  return clipUtf8(payloadsEncrypted ? `${summary} (details encrypted)` : reason, SEARCH_ATTRIBUTE_MAX_BYTES);
}

/**
 * A run starting: what it works on, outcome running, and no reason (a reset run starts with
 * the attributes of the run it replaces, so a stale reason must be cleared).
 */
export function publishStart(subject: { service: string; model?: string }): void {
  upsertSearchAttributes([
    ...(subject.model !== undefined ? [{ key: SEARCH_ATTRIBUTES.model, value: subject.model }] : []),
    { key: SEARCH_ATTRIBUTES.service, value: subject.service },
    { key: SEARCH_ATTRIBUTES.outcome, value: 'running' },
    { key: SEARCH_ATTRIBUTES.reason, value: null },
  ]);
}

/** The stage (or phase) now running, for the UI's list filters. */
export function publishStage(stage: string): void {
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.stage, value: stage }]);
}

/**
 * How the run ended; with a reason, QwenopsReason too (only `summary` when payloads are
 * encrypted, see searchableReason).
 */
export function publishOutcome(outcome: string, reason?: { text: string; summary: string }): void {
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.outcome, value: outcome },
    ...(reason
      ? [{ key: SEARCH_ATTRIBUTES.reason, value: searchableReason(reason.text, reason.summary) }]
      : []),
  ]);
}
