import { readFileSync } from 'node:fs';
import { InputValidationError } from '../../domain/validation.js';
import { createLogger } from '../../observability/logger.js';
import { AesGcmPayloadCodec } from '../../temporal/aes-gcm-codec.js';
import {
  DEFAULT_CORS_ORIGINS,
  DEFAULT_MAX_BODY_BYTES,
  startCodecServer,
} from '../../temporal/codec-server.js';
import { integerOption, portOption } from '../options.js';
import type { CommandGroup } from './index.js';

// `qwenops codec-server`: the Temporal codec server for QWENOPS_CODEC_KEY, so the Web UI
// (`--ui-codec-endpoint`, or the UI's codec settings) and `temporal workflow show
// --codec-endpoint` show encrypted payloads and failures in clear. The key stays here;
// callers authenticate with a bearer token (--token-file or QWENOPS_CODEC_SERVER_TOKEN).

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function resolveCodecServerToken(opts: {
  tokenFile?: string;
  allowUnauthenticated?: boolean;
  host: string;
}) {
  const issues: { path: string; message: string }[] = [];
  let token: string | undefined;
  if (opts.tokenFile) {
    try {
      token = readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      issues.push({
        path: '--token-file',
        message: `cannot read ${opts.tokenFile}: ${(err as Error).message}`,
      });
    }
    if (token === '') issues.push({ path: '--token-file', message: `${opts.tokenFile} is empty` });
  } else if (process.env.QWENOPS_CODEC_SERVER_TOKEN) {
    token = process.env.QWENOPS_CODEC_SERVER_TOKEN.trim();
  }
  if (!token && !opts.allowUnauthenticated && issues.length === 0) {
    issues.push({
      path: '--token-file',
      message:
        'a bearer token is required (--token-file or QWENOPS_CODEC_SERVER_TOKEN), or --allow-unauthenticated on loopback',
    });
  }
  if (!token && opts.allowUnauthenticated && !LOOPBACK.has(opts.host)) {
    issues.push({
      path: '--host',
      message: `--allow-unauthenticated only listens on loopback, not ${opts.host}`,
    });
  }
  if (issues.length > 0) throw new InputValidationError('codec server options', issues);
  return token || undefined;
}

export const registerCodecServerCommands: CommandGroup = (program, context) => {
  program
    .command('codec-server')
    .description(
      'serve POST /encode and /decode (Temporal codec server protocol) with QWENOPS_CODEC_KEY, for the Web UI and temporal CLI',
    )
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', portOption('--port'), 8888)
    .option(
      '--cors-origin <origin>',
      `origin of a Temporal UI allowed to call it; repeatable (default ${DEFAULT_CORS_ORIGINS.join(', ')})`,
      collect,
    )
    .option(
      '--token-file <file>',
      'file holding the bearer token callers must send (or QWENOPS_CODEC_SERVER_TOKEN)',
    )
    .option('--allow-unauthenticated', 'no token (loopback only, for a laptop dev server)')
    .option(
      '--max-body-bytes <n>',
      'largest request body accepted',
      integerOption('--max-body-bytes', { max: 256 * 1024 * 1024 }),
      DEFAULT_MAX_BODY_BYTES,
    )
    .action(
      async (opts: {
        host: string;
        port: number;
        corsOrigin?: string[];
        tokenFile?: string;
        allowUnauthenticated?: boolean;
        maxBodyBytes: number;
      }) => {
        const ctx = context();
        const key = ctx.config.codecKey;
        if (!key) {
          throw new InputValidationError('codec server options', [
            { path: 'QWENOPS_CODEC_KEY', message: 'is not set: there is nothing to encode or decode with' },
          ]);
        }
        const token = resolveCodecServerToken(opts);
        const logger = createLogger('qwenops-codec-server', ctx.config.log.level, 2);
        const server = await startCodecServer({
          codec: AesGcmPayloadCodec.fromBase64Key(key),
          token,
          corsOrigins: opts.corsOrigin ?? DEFAULT_CORS_ORIGINS,
          maxBodyBytes: opts.maxBodyBytes,
          host: opts.host,
          port: opts.port,
          logger,
        });
        process.stdout.write(
          `codec server listening on ${server.url} (${token ? 'bearer token required' : 'no authentication'}); ` +
            `UI: temporal server start-dev --ui-codec-endpoint ${server.url}\n`,
        );
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
      },
    );
};
