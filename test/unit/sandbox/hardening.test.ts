import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bearerMatches, readTokenFile, writeNewToken } from '../../../src/cluster/sandbox/auth.js';
import {
  assertSpecEnv,
  EnvNotAllowedError,
  specEnvAllowed,
  withoutStoreCredentials,
} from '../../../src/cluster/sandbox/env-policy.js';

describe('sandbox spec env allowlist', () => {
  it.each([
    'QWENOPS_SIM_JOB_SECONDS',
    'QWENOPS_STORE',
    'QWENOPS_STORE_DIR',
    'QWENOPS_S3_ENDPOINT',
    'QWENOPS_S3_ACCESS_KEY',
    'VLLM_ATTENTION_BACKEND',
    'HF_HUB_OFFLINE',
    'TRANSFORMERS_OFFLINE',
    'OMP_NUM_THREADS',
    'CUDA_VISIBLE_DEVICES',
    'NCCL_DEBUG',
  ])('allows %s', (name) => expect(specEnvAllowed(name)).toBe(true));

  it.each([
    'LD_PRELOAD',
    'LD_LIBRARY_PATH',
    'NODE_OPTIONS',
    'PYTHONPATH',
    'PYTHONSTARTUP',
    'BASH_ENV',
    'PATH',
    'HOME',
    'QWENOPS_CONFIG',
    'QWENOPS_SANDBOX_SECRETS',
    'qwenops_sim_x',
  ])('refuses %s', (name) => expect(specEnvAllowed(name)).toBe(false));

  it('names every refused variable', () => {
    const err = (() => {
      try {
        assertSpecEnv('job spec', [
          { field: 'env.LD_PRELOAD', name: 'LD_PRELOAD' },
          { field: 'env.QWENOPS_SIM_X', name: 'QWENOPS_SIM_X' },
          { field: 'env.PYTHONPATH', name: 'PYTHONPATH' },
        ]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(EnvNotAllowedError);
    expect((err as EnvNotAllowedError).fields).toEqual(['env.LD_PRELOAD', 'env.PYTHONPATH']);
  });

  it('strips store credentials from a serving process env', () => {
    expect(
      withoutStoreCredentials({
        QWENOPS_S3_ACCESS_KEY: 'a',
        QWENOPS_S3_SECRET_KEY: 'b',
        AWS_SECRET_ACCESS_KEY: 'c',
        QWENOPS_S3_ENDPOINT: 'http://127.0.0.1:9000',
        PATH: '/usr/bin',
      }),
    ).toEqual({ QWENOPS_S3_ENDPOINT: 'http://127.0.0.1:9000', PATH: '/usr/bin' });
  });
});

describe('sandbox API token', () => {
  it('is written 0600, fresh at every start, and compared exactly', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-token-'));
    try {
      const first = await writeNewToken(dir);
      expect((await stat(first.file)).mode & 0o777).toBe(0o600);
      expect((await readFile(first.file, 'utf8')).trim()).toBe(first.token);
      expect(readTokenFile(first.file)).toBe(first.token);
      const second = await writeNewToken(dir);
      expect(second.token).not.toBe(first.token);
      expect(readTokenFile(second.file)).toBe(second.token);
      expect(bearerMatches(`Bearer ${second.token}`, second.token)).toBe(true);
      expect(bearerMatches(`bearer ${second.token}`, second.token)).toBe(true);
      expect(bearerMatches(`Bearer ${first.token}`, second.token)).toBe(false);
      expect(bearerMatches(`Bearer ${second.token.slice(0, -1)}`, second.token)).toBe(false);
      expect(bearerMatches(second.token, second.token)).toBe(false);
      expect(bearerMatches(undefined, second.token)).toBe(false);
      expect(bearerMatches('Bearer ', second.token)).toBe(false);
      expect(readTokenFile(path.join(dir, 'missing'))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
