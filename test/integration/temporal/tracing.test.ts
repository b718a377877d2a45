import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Client, WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { configSchema } from '../../../src/config/config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { startTracing, type Tracing } from '../../../src/observability/tracing.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { tracingClientInterceptors, tracingWorkerOptions } from '../../../src/temporal/tracing.js';
import { TASK_QUEUES } from '../../../workflows/definitions.js';
import { startProcess } from '../../support/processes.js';
import { createDevServerEnv } from '../../support/temporal.js';
import type { TracedActivities } from './tracing-workflow.js';

// One trace from the client to the activity: a client with qwenops' tracing interceptors
// starts a workflow on a worker with the tracing worker options (activity interceptors, the
// OpenTelemetry workflow interceptor module in the bundle, the span sink), exactly as
// workers/run.ts and the CLI wire them; the spans land in an in-memory exporter. The
// activity logs through the project's JSON logger, which stamps the trace id.

const here = path.dirname(fileURLToPath(import.meta.url));

// Workflow log lines reach the Runtime's logger (through the SDK's logger sink).
const sdkLogs: LogEntry[] = [];
Runtime.install({ logger: new DefaultLogger('INFO', (entry) => sdkLogs.push(entry)) });

const exporter = new InMemorySpanExporter();
const logLines: Array<Record<string, unknown>> = [];
const logger = createLogger('qwenops-test-activity', 'info', {
  write: (line: string) => {
    logLines.push(JSON.parse(line) as Record<string, unknown>);
  },
});

let env: TestWorkflowEnvironment;
let tracing: Tracing;
let worker: Worker;
let running: Promise<void>;
const taskQueue = `tracing-${randomUUID()}`;

const activities: TracedActivities = {
  async tracedGreeting(name: string): Promise<string> {
    logger.info({ name }, 'greeting from the activity');
    return `hello ${name}`;
  },
};

beforeAll(async () => {
  tracing = startTracing({
    serviceName: 'qwenops-test',
    settings: configSchema.parse({}).tracing,
    exporter,
  }) as Tracing;
  env = await createDevServerEnv();
  const traced = tracingWorkerOptions(tracing);
  if (!traced) throw new Error('tracing worker options missing');
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: path.join(here, 'tracing-workflow.ts'),
    activities,
    interceptors: traced.interceptors,
    sinks: traced.sinks,
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  await tracing?.shutdown();
});

function one(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  expect(found.map((s) => s.name)).toEqual([name]);
  return found[0] as ReadableSpan;
}

describe('OpenTelemetry tracing', () => {
  it('is off unless an exporter or an OTLP endpoint is configured', () => {
    const settings = configSchema.parse({}).tracing;
    expect(startTracing({ serviceName: 'x', settings })).toBeUndefined();
    expect(
      startTracing({ serviceName: 'x', settings: { ...settings, exporters: ['none'] } }),
    ).toBeUndefined();
    expect(tracingClientInterceptors(undefined)).toBeUndefined();
    expect(tracingWorkerOptions(undefined)).toBeUndefined();
  });

  it('joins client, workflow and activity in one trace, and stamps the trace id on the logs', async () => {
    const client = new Client({
      connection: env.connection,
      interceptors: tracingClientInterceptors(tracing),
    });
    const workflowId = `traced-${randomUUID()}`;
    const result = await client.workflow.execute('tracedWorkflow', {
      args: ['qwen'],
      taskQueue,
      workflowId,
    });
    expect(result).toBe('hello qwen');

    // Workflow spans leave the sandbox through the sink after the activation that ends them.
    const spans = await vi.waitFor(
      () => {
        const finished = exporter.getFinishedSpans();
        expect(finished.map((s) => s.name)).toContain('RunWorkflow:tracedWorkflow');
        return finished;
      },
      { timeout: 15_000, interval: 100 },
    );
    const start = one(spans, 'StartWorkflow:tracedWorkflow');
    const run = one(spans, 'RunWorkflow:tracedWorkflow');
    const scheduled = one(spans, 'StartActivity:tracedGreeting');
    const activity = one(spans, 'RunActivity:tracedGreeting');

    const traceId = start.spanContext().traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    for (const span of [run, scheduled, activity]) expect(span.spanContext().traceId).toBe(traceId);
    // client -> workflow -> activity schedule -> activity run
    expect(start.parentSpanId).toBeUndefined();
    expect(run.parentSpanId).toBe(start.spanContext().spanId);
    expect(scheduled.parentSpanId).toBe(run.spanContext().spanId);
    expect(activity.parentSpanId).toBe(scheduled.spanContext().spanId);
    // The sink stamps the workflow's info on its spans; the activity's span names the workflow.
    expect(run.attributes.workflowId).toBe(workflowId);
    expect(activity.attributes.temporalWorkflowId).toBe(workflowId);
    expect(run.resource.attributes['service.name']).toBe('qwenops-test');
    expect(activity.resource.attributes['service.name']).toBe('qwenops-test');

    // The activity's log line, through src/observability/logger.ts.
    const line = logLines.find((l) => l.msg === 'greeting from the activity');
    expect(line).toMatchObject({
      trace_id: traceId,
      span_id: activity.spanContext().spanId,
      name: 'qwen',
      service: 'qwenops-test-activity',
    });
    // Outside a span the logger adds nothing.
    logger.info('outside any span');
    const outside = logLines.find((l) => l.msg === 'outside any span');
    expect(outside).toBeDefined();
    expect(outside).not.toHaveProperty('trace_id');

    // The workflow's log line (SDK logger sink) carries the same trace.
    const workflowLog = sdkLogs.find((e) => e.message === 'traced workflow started');
    expect(workflowLog?.meta).toMatchObject({ trace_id: traceId, workflowId });
  });
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

/** An OTLP/HTTP (JSON) traces receiver on a free loopback port: what a collector would get. */
async function otlpReceiver(): Promise<{ url: string; spans: OtlpSpan[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: Array<{
            resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> };
            scopeSpans?: Array<{ spans?: Array<Omit<OtlpSpan, 'service'>> }>;
          }>;
        };
        for (const rs of body.resourceSpans ?? []) {
          const service =
            rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans ?? [])
            for (const span of ss.spans ?? []) spans.push({ ...span, service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('a worker process with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  it('exports its workflow and activity spans, in the client trace, to the collector', async () => {
    const receiver = await otlpReceiver();
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-tracing-'));
    // workers/default: workflowsPath + the OpenTelemetry workflow module + the span sink (run.ts).
    const worker = startProcess('worker', nodeEntrypoint('workers/default'), {
      env: {
        QWENOPS_TEMPORAL_ADDRESS: env.address,
        QWENOPS_STATE_DIR: stateDir,
        QWENOPS_STORE_DIR: path.join(stateDir, 'store'),
        QWENOPS_METRICS_ADDRESS: '',
        QWENOPS_LOG_LEVEL: 'info',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      },
    });
    try {
      const deadline = Date.now() + 120_000;
      while (!worker.output().includes('workers running')) {
        if (worker.child.exitCode !== null) throw new Error(`worker exited:\n${worker.output()}`);
        if (Date.now() > deadline) throw new Error(`worker not ready:\n${worker.output()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(worker.output()).toContain('"service":"qwenops-worker-default"');
      expect(worker.output()).toContain('tracing on');
      const client = new Client({
        connection: env.connection,
        interceptors: tracingClientInterceptors(tracing),
      });
      // A load test with a bad request: the spec-resolution local activity refuses it, the
      // workflow fails. Enough for client -> workflow -> activity, without any target.
      const workflowId = `traced-load-test-${randomUUID()}`;
      const failed = await client.workflow
        .execute('loadTest', { args: [{ request: { url: 42 } }], taskQueue: TASK_QUEUES.default, workflowId })
        .catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(WorkflowFailedError);
      const start = one(exporter.getFinishedSpans(), 'StartWorkflow:loadTest');
      const traceId = start.spanContext().traceId;
      // The worker's batch processor exports within 5 s, and on shutdown.
      const spans = await vi.waitFor(
        () => {
          const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
          const names = inTrace.map((s) => s.name);
          expect(names).toContain('RunWorkflow:loadTest');
          expect(names).toContain('RunActivity:resolveLoadTestRequest');
          return inTrace;
        },
        { timeout: 20_000, interval: 200 },
      );
      const run = spans.find((s) => s.name === 'RunWorkflow:loadTest') as OtlpSpan;
      const activity = spans.find((s) => s.name === 'RunActivity:resolveLoadTestRequest') as OtlpSpan;
      expect(run.parentSpanId).toBe(start.spanContext().spanId);
      expect(run.service).toBe('qwenops-worker-default');
      expect(activity.service).toBe('qwenops-worker-default');
      const scheduled = spans.find((s) => s.spanId === activity.parentSpanId);
      expect(scheduled?.name).toBe('StartActivity:resolveLoadTestRequest');
      expect(scheduled?.parentSpanId).toBe(run.spanId);
    } finally {
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      await receiver.close();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
