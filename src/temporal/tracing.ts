import { createRequire } from 'node:module';
import type { ClientInterceptors } from '@temporalio/client';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
  type OpenTelemetryWorkflowExporter,
} from '@temporalio/interceptors-opentelemetry';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import type { Tracing } from '../observability/tracing.js';

// Temporal's OpenTelemetry interceptors (@temporalio/interceptors-opentelemetry), so one trace
// runs client -> workflow -> activity: the client's StartWorkflow span travels to the workflow
// in a header, the workflow's RunWorkflow and StartActivity spans to the activity, whose
// RunActivity span is the active one while it runs (the JSON logger stamps its trace_id).
// Workflow spans are made inside the sandbox and leave it through the `exporter` sink, which
// the SDK does not call during replay; the workflow interceptors only add headers and
// schedule no command, so histories made with and without tracing replay alike.

/** The SDK's workflow interceptor module (inbound, outbound, internals): it goes into the workflow bundle. */
export const OTEL_WORKFLOW_INTERCEPTORS_MODULE = createRequire(import.meta.url).resolve(
  '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors',
);

/** Client interceptors that start a span per client call and pass it on; none when tracing is off. */
export function tracingClientInterceptors(tracing: Tracing | undefined): ClientInterceptors | undefined {
  if (!tracing) return undefined;
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

export interface TracingWorkerOptions {
  /** Activity interceptors (and, with workflows, the workflow interceptor module). */
  interceptors: Required<Pick<WorkerInterceptors, 'activity'>> & Pick<WorkerInterceptors, 'workflowModules'>;
  /** The sink the workflow interceptors export their spans through. */
  sinks: InjectedSinks<{ exporter: OpenTelemetryWorkflowExporter }>;
}

/**
 * What a worker adds for tracing, or undefined when tracing is off. `workflowModules` is the
 * module for the bundle: pass it with the worker's own modules (interceptors.workflowModules
 * with workflowsPath, or workflowInterceptorModules of bundleWorkflowCode).
 */
export function tracingWorkerOptions(tracing: Tracing | undefined): TracingWorkerOptions | undefined {
  if (!tracing) return undefined;
  return {
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
      workflowModules: [OTEL_WORKFLOW_INTERCEPTORS_MODULE],
    },
    sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) },
  };
}
