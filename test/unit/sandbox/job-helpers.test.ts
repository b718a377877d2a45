import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { passThroughEnv } from '../../../src/cluster/sandbox/daemon.js';
import { lastProgress, tailLines } from '../../../src/cluster/sandbox/log-tail.js';
import { loadSecrets, parseSecrets } from '../../../src/cluster/sandbox/secrets.js';
import {
  safetensorsSize,
  safetensorsStream,
} from '../../../src/cluster/sandbox/simulated-jobs/safetensors.js';
import { InputValidationError } from '../../../src/domain/validation.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-sandbox-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('job log helpers', () => {
  it('tails the last lines and finds the last progress line', async () => {
    const file = path.join(dir, 'job.log');
    await writeFile(
      file,
      [
        'SIMULATION: start',
        'QWENOPS_PROGRESS {"percent":10,"message":"loading"}',
        'noise',
        'QWENOPS_PROGRESS {"percent":140,"message":"too far"}',
        'QWENOPS_PROGRESS {broken',
        'done',
        '',
      ].join('\n'),
    );
    expect(await tailLines(file, 2)).toBe('QWENOPS_PROGRESS {broken\ndone');
    expect(await lastProgress(file)).toEqual({ percent: 100, message: 'too far' });
    expect(await tailLines(path.join(dir, 'missing.log'), 5)).toBe('');
    expect(await lastProgress(path.join(dir, 'missing.log'))).toBeUndefined();
  });
});

describe('sandbox secrets', () => {
  it('reads the secrets map from env or a file, refusing malformed input by field', async () => {
    const file = path.join(dir, 'secrets.json');
    await writeFile(file, JSON.stringify({ 'qwenops-s3': { AWS_ACCESS_KEY_ID: 'k' } }));
    const secrets = loadSecrets({
      QWENOPS_SANDBOX_SECRETS: '{"hub":{"token":"t"}}',
      QWENOPS_SANDBOX_SECRETS_FILE: file,
    });
    expect(secrets).toEqual({ 'qwenops-s3': { AWS_ACCESS_KEY_ID: 'k' }, hub: { token: 't' } });
    expect(() => parseSecrets('env', '{"hub":{"token":1}}')).toThrow(InputValidationError);
    expect(() => parseSecrets('env', '{"hub":{"token":1}}')).toThrow(/hub\.token/);
    expect(() => parseSecrets('env', '{')).toThrow(/malformed JSON/);
  });
});

describe('child environment', () => {
  it('passes store settings, simulator knobs and basics through, nothing else, with an absolute store dir', () => {
    const env = passThroughEnv({
      PATH: '/bin',
      QWENOPS_STORE: 'fs',
      QWENOPS_STORE_DIR: 'rel/store',
      QWENOPS_S3_ENDPOINT: 'http://127.0.0.1:9000',
      QWENOPS_SIM_TTFT_MS: '5',
      QWENOPS_TEMPORAL_ADDRESS: '127.0.0.1:7233',
      QWENOPS_SANDBOX_SECRETS: '{}',
      AWS_SECRET_ACCESS_KEY: 'x',
    });
    expect(Object.keys(env).sort()).toEqual(
      ['PATH', 'QWENOPS_S3_ENDPOINT', 'QWENOPS_SIM_TTFT_MS', 'QWENOPS_STORE', 'QWENOPS_STORE_DIR'].sort(),
    );
    expect(env.QWENOPS_STORE_DIR).toBe(path.resolve('rel/store'));
  });
});

describe('simulated safetensors', () => {
  it('writes a valid header (8-byte length, JSON, aligned) and the announced size, deterministically', async () => {
    const tensors = [{ name: 'w', dtype: 'I32' as const, bytes: 1001 }];
    const read = async (seed: string) => {
      const chunks: Buffer[] = [];
      for await (const c of safetensorsStream(tensors, { format: 'pt' }, seed)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    const bytes = await read('s');
    expect(bytes.length).toBe(safetensorsSize(tensors, { format: 'pt' }));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
    expect(header.w).toEqual({ dtype: 'I32', shape: [250], data_offsets: [0, 1000] });
    expect(8 + headerLength + 1000).toBe(bytes.length);
    expect((await read('s')).equals(bytes)).toBe(true);
    expect((await read('t')).equals(bytes)).toBe(false);
  });
});
