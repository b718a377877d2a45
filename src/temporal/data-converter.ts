import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from './aes-gcm-codec.js';

// Clients and workers must agree on this: with a key, every payload in workflow history
// (specs, statuses, reports) is AES-256-GCM encrypted before it leaves the process.
export function createDataConverter(codecKey: string | undefined): DataConverter {
  if (!codecKey) return {};
  return { payloadCodecs: [AesGcmPayloadCodec.fromBase64Key(codecKey)] };
}
