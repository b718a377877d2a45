import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { Logger } from '../observability/logger.js';

// Temporal codec server (https://docs.temporal.io/codec-server): POST .../encode and
// POST .../decode take and return `{"payloads": [Payload...]}` in protobuf JSON (metadata
// values and data base64), so the Web UI and `temporal workflow show --codec-endpoint` can
// show encrypted payloads in clear without holding the key. Only the last path segment
// selects the operation (the protocol lets it be mounted under any prefix); the UI's
// X-Namespace header is logged. Every request needs `Authorization: Bearer <token>` unless
// the server was explicitly started without a token; the browser's CORS preflight (which
// never carries credentials) is answered for the configured origins only.

export const DEFAULT_CORS_ORIGINS = ['http://localhost:8233', 'http://127.0.0.1:8233'];
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const MAX_PAYLOADS = 10_000;
const ALLOWED_HEADERS = 'Authorization, Content-Type, X-Namespace';
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** The bearer token clients must send; undefined: no authentication (loopback use only). */
  token: string | undefined;
  /** Origins (scheme://host:port) whose pages may call the server (the Temporal UI). */
  corsOrigins?: string[];
  /** Request bodies above this are refused with 413. */
  maxBodyBytes?: number;
  logger?: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Constant-time check of an Authorization header against the expected bearer token. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer\s+(.+)$/i.exec(header?.trim() ?? '')?.[1] ?? '';
  // Comparing digests keeps the comparison constant-time even when the lengths differ.
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new HttpError(413, `request body of ${declared} bytes is over the ${limit}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body is over the ${limit}-byte limit`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function base64Field(value: unknown, where: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value)) {
    throw new HttpError(400, `${where} must be a base64 string`);
  }
  return Buffer.from(value, 'base64');
}

/** `{"payloads": [...]}` in protobuf JSON -> Payloads; 400 naming the first bad field. */
export function parsePayloads(body: Buffer): Payload[] {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `malformed JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new HttpError(400, 'body must be a JSON object {"payloads": [...]}');
  }
  const list = (json as { payloads?: unknown }).payloads ?? [];
  if (!Array.isArray(list)) throw new HttpError(400, 'payloads must be an array');
  if (list.length > MAX_PAYLOADS) {
    throw new HttpError(413, `${list.length} payloads are over the limit of ${MAX_PAYLOADS} per request`);
  }
  return list.map((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new HttpError(400, `payloads[${i}] must be an object`);
    }
    const { metadata = {}, data } = item as { metadata?: unknown; data?: unknown };
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new HttpError(400, `payloads[${i}].metadata must be an object`);
    }
    const payload: Payload = { metadata: {} };
    for (const [key, value] of Object.entries(metadata)) {
      (payload.metadata as Record<string, Uint8Array>)[key] = base64Field(
        value,
        `payloads[${i}].metadata.${key}`,
      );
    }
    if (data !== undefined) payload.data = base64Field(data, `payloads[${i}].data`);
    return payload;
  });
}

function payloadsJson(payloads: Payload[]): string {
  return JSON.stringify({
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(
        Object.entries(p.metadata ?? {}).map(([k, v]) => [
          k,
          Buffer.from(v ?? new Uint8Array()).toString('base64'),
        ]),
      ),
      data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
    })),
  });
}

function send(res: ServerResponse, status: number, body: string, contentType = 'application/json'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  res.end(body);
}

export function createCodecServer(options: CodecServerOptions): Server {
  const origins = new Set(options.corsOrigins ?? DEFAULT_CORS_ORIGINS);
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const { codec, token, logger } = options;

  return createServer(async (req, res) => {
    const started = Date.now();
    const path = new URL(req.url ?? '/', 'http://codec').pathname;
    const operation = path.split('/').filter(Boolean).pop() ?? '';
    const origin = req.headers.origin;
    const namespace = req.headers['x-namespace'];
    let count = 0;
    try {
      if (origin !== undefined) {
        if (!origins.has(origin)) throw new HttpError(403, `origin ${origin} is not allowed (--cors-origin)`);
        res.setHeader('Access-Control-Allow-Origin', origin);
        res.setHeader('Access-Control-Allow-Credentials', 'true');
        res.setHeader('Vary', 'Origin');
      }
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'POST, OPTIONS',
          'Access-Control-Allow-Headers': ALLOWED_HEADERS,
          'Access-Control-Max-Age': '600',
        });
        res.end();
        return;
      }
      if (req.method === 'GET' && operation === 'healthz') return send(res, 200, 'ok\n', 'text/plain');
      if (operation !== 'encode' && operation !== 'decode')
        throw new HttpError(404, `no such endpoint ${path}`);
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST, OPTIONS');
        throw new HttpError(405, `${req.method} is not allowed: POST ${path}`);
      }
      if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new HttpError(401, 'missing or wrong bearer token');
      }
      const payloads = parsePayloads(await readBody(req, limit));
      count = payloads.length;
      let result: Payload[];
      try {
        result = operation === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      } catch (err) {
        throw new HttpError(422, `cannot ${operation} the payloads: ${(err as Error).message}`);
      }
      send(res, 200, payloadsJson(result));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      const message = err instanceof HttpError ? err.message : 'internal error';
      if (!(err instanceof HttpError)) logger?.error({ err }, 'codec server request failed');
      // Refused uploads: answer now and close, rather than reading the rest of the body.
      if (status === 413) res.setHeader('Connection', 'close');
      send(res, status, JSON.stringify({ error: message }));
    } finally {
      logger?.info(
        {
          method: req.method,
          path,
          namespace,
          origin,
          payloads: count,
          status: res.statusCode,
          ms: Date.now() - started,
        },
        'codec request',
      );
    }
  });
}

export interface RunningCodecServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startCodecServer(
  options: CodecServerOptions & { host?: string; port?: number },
): Promise<RunningCodecServer> {
  const server = createCodecServer(options);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
