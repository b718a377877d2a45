import path from 'node:path';
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { SEARCH_ATTRIBUTES } from '../../workflows/definitions.js';
import { toolPath } from './tools.js';

// Temporal servers for tests: the time-skipping test server for workflow logic, the real
// dev server (temporal CLI) for integration. Both are the binaries `make setup` installed.

const { IndexedValueType } = temporal.api.enums.v1;

/** Registers qwenops' custom search attributes (the dev server gets them at start instead). */
export async function registerSearchAttributes(connection: Connection, namespace = 'default'): Promise<void> {
  const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const key of Object.values(SEARCH_ATTRIBUTES)) {
    searchAttributes[key.name] =
      key.type === 'TEXT'
        ? IndexedValueType.INDEXED_VALUE_TYPE_TEXT
        : IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  }
  await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
}

export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: toolPath('temporal-test-server') } },
  });
  await registerSearchAttributes(env.connection);
  return env;
}

export async function createDevServerEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolPath('temporal') },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ui: false,
      extraArgs: ['--log-level', 'error'],
    },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file (webpack is the slow part of a Worker). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: path.join(repoRoot, 'workflows', 'index.ts'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
  });
  return bundle;
}
