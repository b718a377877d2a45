import { readFileSync } from 'node:fs';
import path from 'node:path';
import { context, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { QwenopsConfig } from '../config/config.js';
import { repoRoot } from '../runtime/entrypoints.js';

// OpenTelemetry tracing of one process (README, "Tracing"): a tracer provider registered
// globally (the Temporal interceptors in src/temporal/tracing.ts and the JSON logger read the
// global API), exporting to an OTLP/HTTP collector or the console. Off, and nothing
// registered, unless the standard OTEL_* variables (or the config's `tracing` section) name
// an exporter; OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn it off.

export type TracingSettings = QwenopsConfig['tracing'];

export interface Tracing {
  readonly serviceName: string;
  readonly resource: Resource;
  /** Where finished spans go; the workflow span sink feeds it too. */
  readonly spanProcessor: SpanProcessor;
  readonly provider: NodeTracerProvider;
  /** Exports what is buffered. */
  forceFlush(): Promise<void>;
  /** Flushes, stops the exporter and unregisters the global provider, context manager and propagator. */
  shutdown(): Promise<void>;
}

/** The exporters the settings ask for (empty: tracing off). */
export function tracingExporters(settings: TracingSettings): Array<'otlp' | 'console'> {
  if (settings.disabled) return [];
  const named = settings.exporters;
  if (named !== undefined) {
    if (named.includes('none')) return [];
    return [...new Set(named.filter((e): e is 'otlp' | 'console' => e !== 'none'))];
  }
  return settings.endpoint || settings.tracesEndpoint ? ['otlp'] : [];
}

/** The OTLP/HTTP traces URL: the traces endpoint as is, else <endpoint>/v1/traces, else the spec's default. */
export function otlpTracesUrl(settings: TracingSettings): string {
  if (settings.tracesEndpoint) return settings.tracesEndpoint;
  const base = settings.endpoint ?? 'http://localhost:4318';
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface StartTracingOptions {
  /** service.name of this process (qwenops-cli, qwenops-worker-cluster, ...); the settings' serviceName wins. */
  serviceName: string;
  settings: TracingSettings;
  /**
   * Exporter to use instead of the configured ones (tests: an InMemorySpanExporter); spans
   * then go out synchronously (SimpleSpanProcessor) and tracing is on whatever the settings say.
   */
  exporter?: SpanExporter;
  /** Extra resource attributes. */
  attributes?: Record<string, string>;
}

/** Starts tracing for this process, or returns undefined when no exporter is configured. */
export function startTracing(options: StartTracingOptions): Tracing | undefined {
  const { settings } = options;
  let spanProcessor: SpanProcessor;
  if (options.exporter) {
    spanProcessor = new SimpleSpanProcessor(options.exporter);
  } else {
    const exporters = tracingExporters(settings);
    if (exporters.length === 0) return undefined;
    const processors = exporters.map((kind) =>
      kind === 'console'
        ? new SimpleSpanProcessor(new ConsoleSpanExporter())
        : new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpTracesUrl(settings) })),
    );
    spanProcessor = processors.length === 1 ? (processors[0] as SpanProcessor) : fanOut(processors);
  }
  const serviceName = settings.serviceName ?? options.serviceName;
  const resource = new Resource({
    'service.name': serviceName,
    'service.namespace': 'qwenops',
    'service.version': packageVersion(),
    'process.pid': process.pid,
    ...options.attributes,
  });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  // Global tracer provider, AsyncLocalStorage context manager and W3C trace-context
  // propagator: the interceptors inject/extract trace headers through the global API.
  provider.register();
  let stopped: Promise<void> | undefined;
  return {
    serviceName,
    resource,
    spanProcessor,
    provider,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => {
      stopped ??= provider
        .shutdown()
        .catch(() => undefined)
        .finally(() => {
          trace.disable();
          context.disable();
          propagation.disable();
        });
      return stopped;
    },
  };
}

/** One processor feeding several (OTEL_TRACES_EXPORTER=otlp,console). */
function fanOut(processors: SpanProcessor[]): SpanProcessor {
  return {
    onStart: (span, parent) => {
      for (const p of processors) p.onStart(span, parent);
    },
    onEnd: (span) => {
      for (const p of processors) p.onEnd(span);
    },
    forceFlush: async () => {
      await Promise.all(processors.map((p) => p.forceFlush()));
    },
    shutdown: async () => {
      await Promise.all(processors.map((p) => p.shutdown()));
    },
  };
}
