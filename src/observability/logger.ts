import { type Logger, pino } from 'pino';

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

export function createLogger(name: string, level: string = process.env.QWENOPS_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    base: { service: name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: '***' },
    formatters: { level: (label) => ({ level: label }) },
  });
}
