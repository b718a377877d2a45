import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { createLogger, traceFields } from '../../../src/observability/logger.js';
import { otlpTracesUrl, tracingExporters } from '../../../src/observability/tracing.js';
import { workerServiceName } from '../../../workers/run.js';

const tracingOf = (env: NodeJS.ProcessEnv) => loadConfig({ env }).tracing;

describe('tracing config (standard OTEL_* variables)', () => {
  it('is off by default', () => {
    const settings = tracingOf({});
    expect(settings).toEqual({ disabled: false });
    expect(tracingExporters(settings)).toEqual([]);
  });

  it('turns on with an OTLP endpoint, and sends to <endpoint>/v1/traces', () => {
    const settings = tracingOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
    expect(tracingExporters(settings)).toEqual(['otlp']);
    expect(otlpTracesUrl(settings)).toBe('http://collector:4318/v1/traces');
    const traces = tracingOf({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://tempo.example/otlp/v1/traces' });
    expect(tracingExporters(traces)).toEqual(['otlp']);
    expect(otlpTracesUrl(traces)).toBe('https://tempo.example/otlp/v1/traces');
    expect(otlpTracesUrl(tracingOf({ OTEL_TRACES_EXPORTER: 'otlp' }))).toBe(
      'http://localhost:4318/v1/traces',
    );
  });

  it('respects OTEL_TRACES_EXPORTER (list, none) and OTEL_SDK_DISABLED', () => {
    expect(tracingExporters(tracingOf({ OTEL_TRACES_EXPORTER: 'otlp, Console' }))).toEqual([
      'otlp',
      'console',
    ]);
    expect(
      tracingExporters(
        tracingOf({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
      ),
    ).toEqual([]);
    expect(
      tracingExporters(
        tracingOf({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
      ),
    ).toEqual([]);
    expect(tracingOf({ OTEL_SERVICE_NAME: 'my-worker' }).serviceName).toBe('my-worker');
  });

  it('refuses a bad exporter or endpoint, naming the variable', () => {
    expect(() => tracingOf({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(InputValidationError);
    expect(() => tracingOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT/,
    );
  });

  it('names each worker process', () => {
    expect(workerServiceName(['cluster'])).toBe('qwenops-worker-cluster');
    expect(workerServiceName(['gpuJobs'])).toBe('qwenops-worker-gpu-jobs');
    expect(workerServiceName(['default', 'knowledge'])).toBe('qwenops-worker');
  });
});

describe('log lines outside a span', () => {
  it('carry no trace fields', () => {
    expect(traceFields()).toEqual({});
    const lines: string[] = [];
    createLogger('t', 'info', { write: (l: string) => void lines.push(l) }).info('hello');
    expect(JSON.parse(lines[0] as string)).not.toHaveProperty('trace_id');
  });
});
