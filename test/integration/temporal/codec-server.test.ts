import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveCodecServerToken } from '../../../src/cli/commands/codec-server.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { AesGcmPayloadCodec } from '../../../src/temporal/aes-gcm-codec.js';
import { type RunningCodecServer, startCodecServer } from '../../../src/temporal/codec-server.js';
import { freePort, waitForPort } from '../../support/ports.js';
import { startProcess } from '../../support/processes.js';

// The codec server over real HTTP (undici), as the Temporal UI and CLI call it.

const KEY = randomBytes(32).toString('base64');
const TOKEN = randomBytes(24).toString('hex');
const UI = 'http://localhost:8233';
let server: RunningCodecServer;

const b64 = (u: Uint8Array | null | undefined) => Buffer.from(u ?? new Uint8Array()).toString('base64');
function jsonPayloads(values: unknown[]) {
  return {
    payloads: values.map((v) => {
      const p = defaultPayloadConverter.toPayload(v);
      return {
        metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, m]) => [k, b64(m)])),
        data: b64(p.data),
      };
    }),
  };
}

async function post(op: string, body: string | object, headers: Record<string, string> = {}) {
  const res = await request(`${server.url}/${op}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

beforeAll(async () => {
  server = await startCodecServer({
    codec: AesGcmPayloadCodec.fromBase64Key(KEY),
    token: TOKEN,
    maxBodyBytes: 4 * 1024 * 1024,
  });
});
afterAll(async () => {
  await server?.close();
});

describe('codec server', () => {
  it('encodes then decodes back to the same payloads (UI protocol, X-Namespace)', async () => {
    const plain = jsonPayloads([{ model: 'qwen/Qwen-7B-Chat', secret: '密钥 marker-123' }, 'second', null]);
    const encoded = await post('encode', plain, { 'x-namespace': 'default' });
    expect(encoded.status).toBe(200);
    const enc = encoded.json();
    expect(enc.payloads).toHaveLength(3);
    expect(Buffer.from(enc.payloads[0].metadata.encoding, 'base64').toString()).toBe('binary/encrypted');
    expect(encoded.text).not.toContain(Buffer.from('marker-123').toString('base64'));
    // Mounted under any prefix: only the last path segment counts.
    const decoded = await post('some/prefix/decode', enc, { 'x-namespace': 'default' });
    expect(decoded.status).toBe(200);
    expect(decoded.json()).toEqual(plain);
  });

  it('refuses requests without the bearer token (401), and with a wrong one', async () => {
    const plain = jsonPayloads(['x']);
    const none = await request(`${server.url}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(plain),
    });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(await none.body.json()).toEqual({ error: 'missing or wrong bearer token' });
    expect((await post('decode', plain, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await post('decode', plain, { authorization: TOKEN })).status).toBe(401);
  });

  it('answers the CORS preflight for the UI origin only, and sets CORS headers on responses', async () => {
    const preflight = await request(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: {
        origin: UI,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace,authorization',
      },
    });
    await preflight.body.dump();
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(UI);
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');
    expect(String(preflight.headers['access-control-allow-methods'])).toContain('POST');
    const allowed = String(preflight.headers['access-control-allow-headers']).toLowerCase();
    for (const h of ['content-type', 'x-namespace', 'authorization']) expect(allowed).toContain(h);

    const other = await request(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    await other.body.dump();
    expect(other.statusCode).toBe(403);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();

    const actual = await post('encode', jsonPayloads(['y']), { origin: 'http://127.0.0.1:8233' });
    expect(actual.status).toBe(200);
    expect(actual.headers['access-control-allow-origin']).toBe('http://127.0.0.1:8233');
  });

  it('rejects malformed bodies with 400 naming the problem', async () => {
    const broken = await post('decode', '{"payloads": [');
    expect(broken.status).toBe(400);
    expect(broken.json().error).toMatch(/^malformed JSON: /);
    const notArray = await post('decode', { payloads: 'nope' });
    expect(notArray.status).toBe(400);
    expect(notArray.json().error).toBe('payloads must be an array');
    const badData = await post('decode', { payloads: [{ metadata: {}, data: 'not base64!' }] });
    expect(badData.status).toBe(400);
    expect(badData.json().error).toBe('payloads[0].data must be a base64 string');
    const badMeta = await post('decode', { payloads: [{ metadata: { encoding: 12 } }] });
    expect(badMeta.json().error).toBe('payloads[0].metadata.encoding must be a base64 string');
  });

  it('refuses bodies over the size limit with 413', async () => {
    const big = JSON.stringify({
      payloads: [{ metadata: {}, data: randomBytes(3_200_000).toString('base64') }],
    });
    expect(big.length).toBeGreaterThan(4 * 1024 * 1024);
    const res = await post('encode', big);
    expect(res.status).toBe(413);
    expect(res.json().error).toContain('4194304-byte limit');
  });

  it('reports payloads encrypted with another key (422), and unknown paths/methods', async () => {
    const other = new AesGcmPayloadCodec(randomBytes(32));
    const [foreign] = await other.encode([defaultPayloadConverter.toPayload('x')]);
    const res = await post('decode', {
      payloads: [
        {
          metadata: Object.fromEntries(Object.entries(foreign?.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
          data: b64(foreign?.data),
        },
      ],
    });
    expect(res.status).toBe(422);
    expect(res.json().error).toMatch(/cannot decode the payloads: payload was encrypted with key id/);
    expect((await post('other', {})).status).toBe(404);
    const get = await request(`${server.url}/decode`, { method: 'GET' });
    await get.body.dump();
    expect(get.statusCode).toBe(405);
  });
});

describe('qwenops codec-server', () => {
  it('needs a token unless --allow-unauthenticated on loopback', () => {
    const saved = process.env.QWENOPS_CODEC_SERVER_TOKEN;
    delete process.env.QWENOPS_CODEC_SERVER_TOKEN;
    try {
      expect(() => resolveCodecServerToken({ host: '127.0.0.1' })).toThrow(/a bearer token is required/);
      expect(resolveCodecServerToken({ host: '127.0.0.1', allowUnauthenticated: true })).toBeUndefined();
      expect(() => resolveCodecServerToken({ host: '0.0.0.0', allowUnauthenticated: true })).toThrow(
        /only listens on loopback/,
      );
      process.env.QWENOPS_CODEC_SERVER_TOKEN = 'from-env';
      expect(resolveCodecServerToken({ host: '0.0.0.0' })).toBe('from-env');
    } finally {
      if (saved === undefined) delete process.env.QWENOPS_CODEC_SERVER_TOKEN;
      else process.env.QWENOPS_CODEC_SERVER_TOKEN = saved;
    }
  });

  it('serves the protocol from the CLI with the key from QWENOPS_CODEC_KEY and a token file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-codec-'));
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const port = await freePort();
    const cli = startProcess(
      'codec-server',
      [...nodeEntrypoint('src/cli/main'), 'codec-server', '--port', String(port), '--token-file', tokenFile],
      { env: { QWENOPS_CODEC_KEY: KEY, QWENOPS_CONFIG: '' } },
    );
    try {
      await waitForPort(port, 60_000);
      const url = `http://127.0.0.1:${port}`;
      const plain = jsonPayloads(['through the CLI']);
      const enc = await request(`${url}/encode`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(plain),
      });
      expect(enc.statusCode).toBe(200);
      // Same key as this process: the in-process server decodes what the CLI encoded.
      const decoded = await post('decode', await enc.body.text());
      expect(decoded.json()).toEqual(plain);
      const anon = await request(`${url}/encode`, { method: 'POST', body: JSON.stringify(plain) });
      await anon.body.dump();
      expect(anon.statusCode).toBe(401);
    } finally {
      await cli.kill();
      await rm(dir, { recursive: true, force: true });
    }
    expect(cli.output()).toContain(`codec server listening on http://127.0.0.1:${port}`);
  });
});
