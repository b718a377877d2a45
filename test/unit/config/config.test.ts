import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, redactConfig } from '../../../src/config/config.js';

describe('configuration', () => {
  it('defaults to the embedded stack', () => {
    const config = loadConfig({ env: {} });
    expect(config.cluster.kind).toBe('sandbox');
    expect(config.store.kind).toBe('fs');
    expect(config.hub.kind).toBe('local');
    expect(config.temporal.address).toBe('127.0.0.1:7233');
  });

  it('takes env over the file and names the env variable of a bad value', () => {
    const file = path.join(os.tmpdir(), `qwenops-config-${process.pid}.yaml`);
    writeFileSync(file, 'cluster:\n  kind: kubernetes\ntemporal:\n  namespace: prod\n');
    const config = loadConfig({ env: { QWENOPS_TEMPORAL_NAMESPACE: 'staging' }, file });
    expect(config.cluster.kind).toBe('kubernetes');
    expect(config.temporal.namespace).toBe('staging');
    expect(() => loadConfig({ env: { QWENOPS_TEMPORAL_ADDRESS: 'not an address' } })).toThrow(
      /temporal\.address \(QWENOPS_TEMPORAL_ADDRESS\): must be host:port/,
    );
  });

  it('refuses secrets in the file and redacts them for logs', () => {
    const file = path.join(os.tmpdir(), `qwenops-config-secret-${process.pid}.yaml`);
    writeFileSync(file, 'store:\n  secretKey: hunter2\n');
    expect(() => loadConfig({ env: {}, file })).toThrow(
      /secrets are read from the environment only \(QWENOPS_S3_SECRET_KEY\)/,
    );
    const config = loadConfig({ env: { QWENOPS_S3_SECRET_KEY: 'hunter2', QWENOPS_CODEC_KEY: 'k' } });
    const redacted = JSON.stringify(redactConfig(config));
    expect(redacted).not.toContain('hunter2');
    expect(redacted).toContain('***');
  });
});
