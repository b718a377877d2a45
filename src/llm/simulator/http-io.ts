import type http from 'node:http';
import { openAiError } from './requests.js';

// The HTTP plumbing every simulator route shares: reading a size-limited body and answering
// JSON, always with the header that tells a client the answer is simulated.

export const SIMULATED_HEADER = 'x-qwenops-simulated';

export class RequestTooLarge extends Error {}

export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new RequestTooLarge(`request body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    [SIMULATED_HEADER]: 'true',
    ...headers,
  });
  res.end(text);
}

/** Whatever counts error answers by status (the simulator's stats recorder). */
export interface ErrorCounter {
  error(status: number): void;
}

/** Answers an OpenAI error body and counts it. */
export function sendError(
  res: http.ServerResponse,
  errors: ErrorCounter,
  status: number,
  message: string,
  param: string | null = null,
): void {
  errors.error(status);
  sendJson(res, status, openAiError(status, message, param));
}
