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

/**
 * `fd` 2 sends the logs to stderr: process entrypoints that print a machine-read ready
 * line on stdout (sandbox daemon, serving simulator) keep stdout for that line alone.
 */
export function createLogger(
  name: string,
  level: string = process.env.QWENOPS_LOG_LEVEL ?? 'info',
  fd: 1 | 2 = 1,
): Logger {
  const options = {
    name,
    level,
    base: { service: name, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: '***' },
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return fd === 1 ? pino(options) : pino(options, pino.destination(fd));
}
