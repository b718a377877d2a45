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

import { clipUtf8 } from '../src/domain/units.js';
import { SEARCH_ATTRIBUTE_MAX_BYTES } from './definitions.js';

let payloadsEncrypted = false;

/** Called by the encrypted-visibility interceptor module only. */
export function markPayloadsEncrypted(): void {
  payloadsEncrypted = true;
}

/** The QwenopsReason value: the reason, or only `summary` when payloads are encrypted. */
export function searchableReason(reason: string, summary: string): string {
  return clipUtf8(payloadsEncrypted ? `${summary} (details encrypted)` : reason, SEARCH_ATTRIBUTE_MAX_BYTES);
}
