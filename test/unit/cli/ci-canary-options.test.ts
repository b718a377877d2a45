import { describe, expect, it } from 'vitest';
import { cliEnvironment, connectionTls } from '../../../src/cli/context.js';
import { EXIT } from '../../../src/cli/exit-codes.js';
import { releaseWorkflowId } from '../../../src/cli/pipeline-client.js';
import { exitCodeFor, leaseHolder } from '../../../src/cli/wait.js';
import { loadConfig } from '../../../src/config/config.js';
import { runCli } from './run-cli.js';

// The CI-facing parts of `qwenops canary` that need no server: ids derived from the release,
// exit codes, the lease holder in a refusal, and Temporal Cloud settings from the environment.

describe('qwenops canary for CI', () => {
  it('derives the same id for the same service and release', () => {
    const id = releaseWorkflowId({ namespace: 'llm-prod', name: 'qwen-7b-chat' }, '3f2a9c1');
    expect(id).toBe(releaseWorkflowId({ namespace: 'llm-prod', name: 'qwen-7b-chat' }, '3f2a9c1'));
    expect(id).toMatch(/^canary-llm-prod-qwen-7b-chat-3f2a9c1$/);
    expect(releaseWorkflowId({ namespace: 'llm-prod', name: 'qwen-7b-chat' }, 'x'.repeat(400)).length).toBe(
      200,
    );
  });

  it('maps outcomes to distinct exit codes', () => {
    expect(exitCodeFor({ outcome: 'promoted' })).toBe(0);
    expect(exitCodeFor({ outcome: 'rolled_back', failureType: 'RolledBack' })).toBe(2);
    expect(exitCodeFor({ outcome: 'failed', failureType: 'ServiceBusy' })).toBe(EXIT.serviceBusy);
    expect(exitCodeFor({ outcome: 'aborted', failureType: 'Aborted' })).toBe(1);
    const codes = Object.values(EXIT);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('names the holder of the service lease from the refusal', () => {
    expect(leaseHolder('service llm-prod/qwen is being rolled out by workflow canary-a-1')).toBe(
      'canary-a-1',
    );
    expect(leaseHolder('something else')).toBeUndefined();
  });

  it('refuses --id together with --release, and a bad --progress-every', async () => {
    const both = await runCli(
      'canary',
      '--service',
      'a/b',
      '--storage-uri',
      's3://b/k',
      '--id',
      'x',
      '--release',
      'y',
    );
    expect(both.code).toBe(EXIT.usage);
    expect(both.stderr).toMatch(/--id and --release are exclusive/);
    const every = await runCli('canary', '--service', 'a/b', '--progress-every', '0');
    expect(every.code).toBe(EXIT.usage);
  });

  it('reads the standard TEMPORAL_* variables where QWENOPS_TEMPORAL_* are unset', () => {
    const env = cliEnvironment({
      TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
      TEMPORAL_NAMESPACE: 'ns.acct',
      TEMPORAL_API_KEY: 'key-123',
      QWENOPS_TEMPORAL_NAMESPACE: 'wins',
    });
    const config = loadConfig({ env });
    expect(config.temporal).toMatchObject({
      address: 'ns.acct.tmprl.cloud:7233',
      namespace: 'wins',
      apiKey: 'key-123',
    });
    // An API key and no TLS setting: TLS left to the SDK, which turns it on for an API key.
    expect(connectionTls(config.temporal, env)).toBeUndefined();
    expect(
      connectionTls(config.temporal, { ...env, TEMPORAL_TLS: 'false', QWENOPS_TEMPORAL_TLS: 'false' }),
    ).toBe(false);
    const noKey = loadConfig({ env: cliEnvironment({ TEMPORAL_ADDRESS: 'localhost:7233' }) });
    expect(connectionTls(noKey.temporal, {})).toBeUndefined();
    const tls = loadConfig({ env: cliEnvironment({ TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'true' }) });
    expect(connectionTls(tls.temporal, {})).toEqual({});
  });
});
