import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { defaultBuildId, workerDeployment, workerDeploymentOptions } from '../../../workers/versioning.js';

const { version } = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  version: string;
};

describe('worker versioning settings', () => {
  it('is off unless QWENOPS_WORKER_DEPLOYMENT names a deployment', () => {
    expect(workerDeployment(loadConfig({ env: {} }))).toBeUndefined();
    expect(workerDeployment(loadConfig({ env: { QWENOPS_BUILD_ID: '1.0.0' } }))).toBeUndefined();
  });

  it('registers as <package version>+<commit> of the deployment, or as QWENOPS_BUILD_ID', () => {
    expect(defaultBuildId({ QWENOPS_GIT_COMMIT: 'abc1234' })).toBe(`${version}+abc1234`);
    expect(defaultBuildId({})).toMatch(new RegExp(`^${version.replace(/\./g, '\\.')}\\+[0-9a-z]+$`));
    const config = loadConfig({
      env: { QWENOPS_WORKER_DEPLOYMENT: 'qwenops', QWENOPS_BUILD_ID: '0.2.0+def5678' },
    });
    expect(workerDeployment(config)).toEqual({ deploymentName: 'qwenops', buildId: '0.2.0+def5678' });
    expect(workerDeploymentOptions({ deploymentName: 'qwenops', buildId: '0.2.0+def5678' })).toEqual({
      version: { deploymentName: 'qwenops', buildId: '0.2.0+def5678' },
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'AUTO_UPGRADE',
    });
  });

  it('refuses a deployment name with "." and a build id with spaces, naming the variable', () => {
    expect(() => loadConfig({ env: { QWENOPS_WORKER_DEPLOYMENT: 'qwen.ops' } })).toThrow(
      /temporal\.deploymentName \(QWENOPS_WORKER_DEPLOYMENT\): must be letters, digits/,
    );
    expect(() =>
      loadConfig({ env: { QWENOPS_WORKER_DEPLOYMENT: 'qwenops', QWENOPS_BUILD_ID: 'a b' } }),
    ).toThrow(/temporal\.buildId \(QWENOPS_BUILD_ID\)/);
  });
});
