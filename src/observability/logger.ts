import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import { type DestinationStream, type Logger, pino } from 'pino';

// Structured JSON logs (one object per line) for every process. Fields that could carry
// secrets are redacted by pino before serialisation, whatever the call site passes.
export type { Logger } from 'pino';

const REDACT = [
  '*.secretKey',
  '*.accessKey',
  '*.token',
  '*.apiKey',
  '*.password',
  '*.codecKey',
  '*.authorization',
  'headers.authorization',
  '*.databaseUrl',
];

/**
 * The active span's ids (W3C hex), for correlating a log line with its trace: in an activity
 * the OpenTelemetry interceptor makes the activity's span active (src/temporal/tracing.ts).
 * Nothing when tracing is off (no context manager is registered, the active context is empty).
 */
export function traceFields(): { trace_id: string; span_id: string } | Record<string, never> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const ids = span.spanContext();
  return isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}

/**
 * `fd` 2 sends the logs to stderr: process entrypoints that print a machine-read ready
 * line on stdout (sandbox daemon, serving simulator) keep stdout for that line alone. A
 * stream instead of a descriptor receives the lines (tests).
 */
export function createLogger(
  name: string,
  level: string = process.env.QWENOPS_LOG_LEVEL ?? 'info',
  fd: 1 | 2 | DestinationStream = 1,
): Logger {
  const options = {
    name,
    level,
    base: { service: name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: '***' },
    formatters: { level: (label: string) => ({ level: label }) },
    mixin: traceFields,
  };
  if (typeof fd !== 'number') return pino(options, fd);
  return fd === 1 ? pino(options) : pino(options, pino.destination(fd));
}
