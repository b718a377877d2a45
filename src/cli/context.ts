import { Client, Connection } from '@temporalio/client';
import { loadConfig, type QwenopsConfig } from '../config/config.js';
import { createDataConverter } from '../temporal/data-converter.js';
import { temporalTls } from '../temporal/tls.js';

// What every command needs: the validated config and, lazily, a Temporal client.
export class CliContext {
  private configValue?: QwenopsConfig;
  private clientValue?: Promise<Client>;
  private connection?: Connection;

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
      this.configValue = loadConfig({ file: this.options.config, overrides });
    }
    return this.configValue;
  }

  client(): Promise<Client> {
    if (!this.clientValue) {
      this.clientValue = (async () => {
        const { temporal } = this.config;
        this.connection = await Connection.connect({
          address: temporal.address,
          tls: temporalTls(temporal),
          apiKey: temporal.apiKey,
        });
        return new Client({
          connection: this.connection,
          namespace: temporal.namespace,
          dataConverter: createDataConverter(this.config.codecKey),
        });
      })();
    }
    return this.clientValue;
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }

  /** Prints a result: JSON when --json, otherwise the human text. */
  print(value: unknown, human: () => string): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else process.stdout.write(`${human()}\n`);
  }
}
