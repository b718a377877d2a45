import { Client, Connection } from '@temporalio/client';
import { loadConfig, type QwenopsConfig } from '../config/config.js';
import { startTracing, type Tracing } from '../observability/tracing.js';
import { createDataConverter } from '../temporal/data-converter.js';
import { temporalTls } from '../temporal/tls.js';
import { tracingClientInterceptors } from '../temporal/tracing.js';

/**
 * The Temporal CLI's and SDKs' standard variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, ..._KEY_PATH,
 * TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME), read where the QWENOPS_TEMPORAL_*
 * one is not set, so a CI job configured for Temporal Cloud needs nothing qwenops-specific.
 * With an API key and no TLS setting, TLS is on (Temporal Cloud's rule, which the SDK applies
 * when `tls` is left undefined); TEMPORAL_TLS=false turns it off explicitly.
 */
export const STANDARD_TEMPORAL_ENV: ReadonlyArray<readonly [standard: string, qwenops: string]> = [
  ['TEMPORAL_ADDRESS', 'QWENOPS_TEMPORAL_ADDRESS'],
  ['TEMPORAL_NAMESPACE', 'QWENOPS_TEMPORAL_NAMESPACE'],
  ['TEMPORAL_API_KEY', 'QWENOPS_TEMPORAL_API_KEY'],
  ['TEMPORAL_TLS', 'QWENOPS_TEMPORAL_TLS'],
  ['TEMPORAL_TLS_CLIENT_CERT_PATH', 'QWENOPS_TEMPORAL_TLS_CERT'],
  ['TEMPORAL_TLS_CLIENT_KEY_PATH', 'QWENOPS_TEMPORAL_TLS_KEY'],
  ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'QWENOPS_TEMPORAL_TLS_CA'],
  ['TEMPORAL_TLS_SERVER_NAME', 'QWENOPS_TEMPORAL_TLS_SERVER_NAME'],
];

export function cliEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const [standard, own] of STANDARD_TEMPORAL_ENV) {
    if (!out[own] && env[standard]) out[own] = env[standard];
  }
  return out;
}

/** Connection TLS: the configured one; with an API key, the SDK's default (on) unless TLS is explicitly off. */
export function connectionTls(
  temporal: QwenopsConfig['temporal'],
  env: NodeJS.ProcessEnv = cliEnvironment(),
): ReturnType<typeof temporalTls> | false {
  const tls = temporalTls(temporal);
  if (tls) return tls;
  if (temporal.apiKey)
    return env.QWENOPS_TEMPORAL_TLS === 'false' || env.QWENOPS_TEMPORAL_TLS === '0' ? false : undefined;
  return undefined;
}

// What every command needs: the validated config and, lazily, a Temporal client.
export class CliContext {
  private configValue?: QwenopsConfig;
  private clientValue?: Promise<Client>;
  private connection?: Connection;
  private tracing?: Tracing;

  constructor(
    private readonly options: { config?: string; json?: boolean; address?: string; namespace?: string },
  ) {}

  get json(): boolean {
    return Boolean(this.options.json);
  }

  get config(): QwenopsConfig {
    if (!this.configValue) {
      const overrides: Record<string, unknown> = {};
      if (this.options.address) overrides['temporal.address'] = this.options.address;
      if (this.options.namespace) overrides['temporal.namespace'] = this.options.namespace;
      this.configValue = loadConfig({ file: this.options.config, overrides, env: cliEnvironment() });
    }
    return this.configValue;
  }

  client(): Promise<Client> {
    if (!this.clientValue) {
      this.clientValue = (async () => {
        const { temporal } = this.config;
        // With OTEL_* set (README, "Tracing"): the workflows this command starts, signals or
        // updates join the command's trace (service.name qwenops-cli).
        this.tracing = startTracing({ serviceName: 'qwenops-cli', settings: this.config.tracing });
        this.connection = await Connection.connect({
          address: temporal.address,
          tls: connectionTls(temporal),
          apiKey: temporal.apiKey,
        });
        return new Client({
          connection: this.connection,
          namespace: temporal.namespace,
          dataConverter: createDataConverter(this.config.codecKey),
          interceptors: tracingClientInterceptors(this.tracing),
        });
      })();
    }
    return this.clientValue;
  }

  async close(): Promise<void> {
    try {
      await this.connection?.close();
    } finally {
      // Exports the command's spans before the process exits.
      await this.tracing?.shutdown();
    }
  }

  /** Prints a result: JSON when --json, otherwise the human text. */
  print(value: unknown, human: () => string): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else process.stdout.write(`${human()}\n`);
  }
}
