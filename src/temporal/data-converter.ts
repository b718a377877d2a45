import type { DataConverter } from '@temporalio/common';
import { modulePath } from '../runtime/entrypoints.js';
import { AesGcmPayloadCodec } from './aes-gcm-codec.js';

// Clients and workers must agree on this: with a key, every payload in workflow history
// (specs, statuses, reports) is AES-256-GCM encrypted before it leaves the process, and so
// are failure messages and stack traces (see failure-converter.ts).
export function createDataConverter(codecKey: string | undefined): DataConverter {
  if (!codecKey) return {};
  return {
    payloadCodecs: [AesGcmPayloadCodec.fromBase64Key(codecKey)],
    failureConverterPath: modulePath('src/temporal/failure-converter'),
  };
}

/**
 * Workflow interceptor modules the workflow bundle needs for this codec setting: with a key,
 * workflows/encrypted-visibility, which makes workflows keep failure text out of search
 * attributes (they are never encoded). Pass as `interceptors.workflowModules` (Worker with
 * workflowsPath) or `workflowInterceptorModules` (bundleWorkflowCode), together with the
 * data converter's `failureConverterPath`.
 */
export function workflowInterceptorModules(codecKey: string | undefined): string[] {
  return codecKey ? [modulePath('workflows/encrypted-visibility')] : [];
}
