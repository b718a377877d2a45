// Workflow interceptor module the workers add to the workflow bundle when payloads are
// encrypted (see visibility.ts): it only tells the workflow code so, and intercepts nothing.

import type { WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { markPayloadsEncrypted } from './visibility.js';

export const interceptors: WorkflowInterceptorsFactory = () => {
  markPayloadsEncrypted();
  return {};
};
