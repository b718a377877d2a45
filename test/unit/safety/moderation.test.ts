import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnyGuard, LexiconGuard } from '../../../src/safety/guard.js';
import { defaultLexicon } from '../../../src/safety/index.js';
import { ModerationError, ModerationGuard } from '../../../src/safety/moderation.js';

// The moderation adapter against a tiny local server that answers per input text.

let server: Server;
let baseUrl: string;
const seen: unknown[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const parsed = JSON.parse(body) as { input: string; model?: string };
      seen.push({ ...parsed, path: req.url, authorization: req.headers.authorization });
      const send = (status: number, payload: string) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(payload);
      };
      switch (parsed.input) {
        case 'violent':
          return send(
            200,
            JSON.stringify({
              id: 'modr-1',
              model: 'guard',
              results: [
                {
                  flagged: true,
                  categories: { violence: true, sexual: false },
                  category_scores: { violence: 0.98 },
                },
              ],
            }),
          );
        case 'malformed':
          return send(200, JSON.stringify({ results: [{ flagged: 'no', categories: {} }] }));
        case 'empty':
          return send(200, JSON.stringify({ results: [] }));
        case 'not json':
          return send(200, '<html>oops</html>');
        case 'boom':
          return send(500, JSON.stringify({ error: { message: 'guard model crashed' } }));
        default:
          return send(
            200,
            JSON.stringify({ results: [{ flagged: false, categories: { violence: false } }] }),
          );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('moderation guard', () => {
  const guard = () => new ModerationGuard({ baseUrl, model: 'qwen-guard', apiKey: 'k' });

  it('passes a clean text and blocks a flagged one with its categories', async () => {
    expect(await guard().check('hello')).toEqual({ blocked: false, matches: [] });
    const flagged = await guard().check('violent');
    expect(flagged).toEqual({
      blocked: true,
      category: 'violence',
      matches: [{ word: 'violence', category: 'violence' }],
    });
    expect(seen[0]).toEqual({
      input: 'hello',
      model: 'qwen-guard',
      path: '/v1/moderations',
      authorization: 'Bearer k',
    });
  });

  it('a malformed response is an error naming what is wrong, never a pass', async () => {
    await expect(guard().check('malformed')).rejects.toThrow(
      /malformed moderation response .*results\.0\.flagged: .*boolean/,
    );
    await expect(guard().check('empty')).rejects.toThrow(/malformed moderation response .*results: /);
    await expect(guard().check('not json')).rejects.toThrow(/not JSON/);
  });

  it('an HTTP 500 is an error with the status', async () => {
    const error = await guard()
      .check('boom')
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ModerationError);
    expect((error as ModerationError).status).toBe(500);
    expect((error as ModerationError).message).toMatch(/HTTP 500.*guard model crashed/);
  });

  it('an unreachable server is an error', async () => {
    await expect(new ModerationGuard({ baseUrl: 'http://127.0.0.1:1/v1' }).check('x')).rejects.toThrow(
      ModerationError,
    );
  });

  it('AnyGuard blocks when the lexicon or the classifier does', async () => {
    const any = new AnyGuard([new LexiconGuard(defaultLexicon()), guard()]);
    expect((await any.check('赌博')).category).toBe('gambling');
    expect((await any.check('violent')).category).toBe('violence');
    expect((await any.check('hello')).blocked).toBe(false);
    await expect(any.check('boom')).rejects.toThrow(ModerationError);
  });
});
