// Worker Versioning behaviour of each workflow (README, "Rolling out a new worker version").
// A versioning behaviour may only be reported by a worker that runs with Worker Versioning
// on (workers/versioning.ts, QWENOPS_WORKER_DEPLOYMENT): the server refuses a workflow task
// completion that carries one from an unversioned worker ("versioning behavior cannot be
// specified without deployment options being set with versioned mode"), as the embedded
// stack's and the tests' workers are. So the behaviour is chosen when the run starts, from
// the version of the worker that runs its first task. It changes no command: replay is
// unaffected either way.

import type { VersioningBehavior, WorkflowDefinitionOptionsOrGetter } from '@temporalio/common';
import { workflowInfo } from '@temporalio/workflow';

/**
 * `behavior` on a versioned worker, none on an unversioned one (whose "deployment version"
 * is its build id alone, with no deployment name; our versioned workers always have one).
 */
export function versioningBehavior(behavior: VersioningBehavior): WorkflowDefinitionOptionsOrGetter {
  return () => ({
    versioningBehavior: workflowInfo().currentDeploymentVersion?.deploymentName ? behavior : undefined,
  });
}
