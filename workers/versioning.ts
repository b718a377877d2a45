import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
import type { QwenopsConfig } from '../src/config/config.js';
import { repoRoot } from '../src/runtime/entrypoints.js';

// Worker Versioning (Temporal Worker Deployments): with QWENOPS_WORKER_DEPLOYMENT set, every
// worker of this process registers as one version (build id) of that deployment. Which
// version a workflow runs on is then the server's to decide: a new run starts on the
// deployment's current version; promoteModel and canaryRelease stay PINNED to the version
// they started on (their approvals wait days), reindexKnowledgeBase and loadTest
// AUTO_UPGRADE to the current one (workflows/*.ts setWorkflowOptions). The rollout steps
// (deploy, ramp, set current, drain) are in README, "Rolling out a new worker version".

/** <package version>+<commit>: QWENOPS_GIT_COMMIT (set by the image build), else the checkout's, else "dev". */
export function defaultBuildId(env: NodeJS.ProcessEnv = process.env): string {
  const { version } = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
    version: string;
  };
  let commit = env.QWENOPS_GIT_COMMIT?.trim();
  if (!commit) {
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .toString()
        .trim();
    } catch {
      commit = 'dev';
    }
  }
  return `${version}+${commit}`;
}

/** The deployment version this process's workers register as, or undefined (unversioned). */
export function workerDeployment(
  config: Pick<QwenopsConfig, 'temporal'>,
): { deploymentName: string; buildId: string } | undefined {
  const deploymentName = config.temporal.deploymentName;
  if (!deploymentName) return undefined;
  return { deploymentName, buildId: config.temporal.buildId ?? defaultBuildId() };
}

/**
 * Worker options for a versioned worker. The default behaviour is AUTO_UPGRADE; the
 * workflows that must not move (promoteModel, canaryRelease) declare PINNED themselves.
 */
export function workerDeploymentOptions(version: {
  deploymentName: string;
  buildId: string;
}): WorkerDeploymentOptions {
  return { version, useWorkerVersioning: true, defaultVersioningBehavior: 'AUTO_UPGRADE' };
}
