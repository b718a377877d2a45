import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { canonicalJson, readAuditRecords, StoreAuditLog } from '../../../src/audit/audit-log.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { AesGcmPayloadCodec } from '../../../src/temporal/aes-gcm-codec.js';

describe('audit log', () => {
  it('writes one immutable record per action with a payload hash and no secrets', async () => {
    const store = new FsArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'qwenops-audit-')));
    const audit = new StoreAuditLog(store);
    const record = await audit.record({
      actor: 'alice',
      action: 'serving.shift-traffic',
      workflowId: 'wf-1',
      target: 'service llm-prod/qwen-7b-chat',
      details: { toPercent: 25, credentials: { secretKey: 'hunter2' }, apiToken: 'abc' },
    });
    expect(record.payloadSha256).toMatch(/^[0-9a-f]{64}$/);
    const records = await readAuditRecords(store);
    expect(records).toHaveLength(1);
    expect(JSON.stringify(records)).not.toContain('hunter2');
    expect(JSON.stringify(records)).not.toContain('"abc"');
    expect(records[0]?.details).toMatchObject({ toPercent: 25 });
  });

  it('hashes canonical JSON, independent of key order', () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] })).toBe(
      canonicalJson({ a: [2, { c: 4, d: 3 }], b: 1 }),
    );
  });
});

describe('AES-GCM payload codec', () => {
  it('round-trips payloads and hides their content', async () => {
    const codec = new AesGcmPayloadCodec(randomBytes(32));
    const payload = defaultPayloadConverter.toPayload({ model: 'qwen/Qwen-7B-Chat', secret: 'x' });
    const [encoded] = await codec.encode([payload]);
    expect(Buffer.from(encoded?.data ?? []).toString()).not.toContain('qwen');
    const [decoded] = await codec.decode([encoded as never]);
    expect(defaultPayloadConverter.fromPayload(decoded as never)).toEqual({
      model: 'qwen/Qwen-7B-Chat',
      secret: 'x',
    });
  });

  it('refuses a payload encrypted with another key, and a bad key', async () => {
    const [encoded] = await new AesGcmPayloadCodec(randomBytes(32)).encode([
      defaultPayloadConverter.toPayload(1),
    ]);
    await expect(new AesGcmPayloadCodec(randomBytes(32)).decode([encoded as never])).rejects.toThrow(
      /encrypted with key id/,
    );
    expect(() => AesGcmPayloadCodec.fromBase64Key(Buffer.alloc(16).toString('base64'))).toThrow(
      /exactly 32 bytes/,
    );
  });
});
