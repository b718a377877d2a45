import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AesGcmPayloadCodec } from '../../../src/temporal/aes-gcm-codec.js';
import { type RunningCodecServer, startCodecServer } from '../../../src/temporal/codec-server.js';
import { createDataConverter } from '../../../src/temporal/data-converter.js';
import { SEARCH_ATTRIBUTES } from '../../../workflows/definitions.js';
import { canaryRelease } from '../../../workflows/index.js';
import { freePort } from '../../support/ports.js';
import { chromiumPath, toolPath } from '../../support/tools.js';

// The real Temporal Web UI (dev server, --ui-codec-endpoint) in headless Chromium shows a
// workflow input encrypted with QWENOPS_CODEC_KEY in clear, decoded by the codec server
// across origins (CORS preflight, X-Namespace). The browser adds the bearer token to its
// requests (extra HTTP headers), standing in for the UI's "pass access token" setting or
// an authenticating proxy in front of the codec server.

const KEY = randomBytes(32).toString('base64');
const TOKEN = randomBytes(24).toString('hex');
const MARKER = `decoded-${randomUUID()}`;

let codec: RunningCodecServer;
let env: TestWorkflowEnvironment;
let browser: Browser;
let uiUrl: string;
const seen: { method: string; path: string; namespace?: string; origin?: string; auth: boolean }[] = [];

beforeAll(async () => {
  const uiPort = await freePort();
  uiUrl = `http://127.0.0.1:${uiPort}`;
  codec = await startCodecServer({
    codec: AesGcmPayloadCodec.fromBase64Key(KEY),
    token: TOKEN,
    corsOrigins: [uiUrl, `http://localhost:${uiPort}`],
  });
  codec.server.prependListener('request', (req) => {
    seen.push({
      method: req.method ?? '',
      path: new URL(req.url ?? '/', 'http://codec').pathname,
      namespace: req.headers['x-namespace'] as string | undefined,
      origin: req.headers.origin,
      auth: req.headers.authorization === `Bearer ${TOKEN}`,
    });
  });
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolPath('temporal') },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ui: true,
      uiPort,
      extraArgs: ['--log-level', 'error', '--ui-codec-endpoint', codec.url, '--ui-ip', '127.0.0.1'],
    },
  });
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await env?.teardown();
  await codec?.close();
});

describe('Temporal UI with the codec server', () => {
  it('shows the decoded workflow input on the workflow page', async () => {
    const client = new Client({ connection: env.connection, dataConverter: createDataConverter(KEY) });
    const workflowId = `ui-codec-${randomUUID()}`;
    // No worker: the started event holds the (encrypted) input, which is all the page needs.
    const handle = await client.workflow.start(canaryRelease, {
      args: [{ note: MARKER }],
      taskQueue: 'qwenops.ui-codec-test',
      workflowId,
    });
    // The server holds only ciphertext.
    const raw = await new Client({ connection: env.connection }).workflow
      .getHandle(workflowId)
      .fetchHistory();
    expect(Buffer.from(temporal.api.history.v1.History.encode(raw).finish()).includes(MARKER)).toBe(false);

    const context = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` } });
    const page = await context.newPage();
    try {
      await page.goto(
        `${uiUrl}/namespaces/default/workflows/${workflowId}/${handle.firstExecutionRunId}/history`,
      );
      await page.getByText(MARKER).first().waitFor({ timeout: 60_000 });
    } finally {
      await context.close();
    }
    // A real cross-origin call: the browser's preflight (no credentials), then the decode.
    const fromUi = seen.filter((s) => s.path === '/decode' && s.origin === uiUrl);
    expect(fromUi.some((s) => s.method === 'OPTIONS')).toBe(true);
    const posts = fromUi.filter((s) => s.method === 'POST');
    expect(posts.length).toBeGreaterThan(0);
    expect(posts.every((s) => s.namespace === 'default' && s.auth)).toBe(true);
    await handle.terminate('test done');
  });
});
