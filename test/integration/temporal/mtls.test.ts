import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointLoadTestResult } from '../../../activities/loadtest.js';
import { specActivities } from '../../../activities/spec.js';
import { CliContext } from '../../../src/cli/context.js';
import { loadConfig } from '../../../src/config/config.js';
import { temporalTls } from '../../../src/temporal/tls.js';
import { TASK_QUEUES } from '../../../workflows/definitions.js';
import { loadTest } from '../../../workflows/index.js';
import { createDevServerEnv, workflowBundle } from '../../support/temporal.js';

// mTLS to Temporal: a TLS-terminating proxy that requires a client certificate signed by a
// test CA sits in front of the dev server's plaintext gRPC port. The CLI's client
// (CliContext) and a worker connected the way workers/run.ts connects, both configured by
// QWENOPS_TEMPORAL_TLS_CERT/_KEY/_CA/_SERVER_NAME, run a workflow through it; a client
// without a certificate is refused.

const SERVER_NAME = 'temporal.test';
let dir: string;
let env: TestWorkflowEnvironment;
let proxy: tls.Server;
let proxyAddress: string;
let tlsEnv: Record<string, string>;
/** Handshakes the proxy refused, with why. */
const handshakeErrors: string[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A P-256 key and a certificate for it signed by the test CA, with the given extensions. */
async function issue(name: string, cn: string, extensions: string): Promise<void> {
  await writeFile(path.join(dir, `${name}.ext`), extensions);
  openssl(
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    `${name}.ext`,
  );
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-mtls-'));
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=qwenops test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  await issue(
    'server',
    SERVER_NAME,
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${SERVER_NAME}\n`,
  );
  await issue(
    'client',
    'qwenops-worker',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n',
  );

  env = await createDevServerEnv();
  const [host, port] = env.address.split(':') as [string, string];
  const read = (f: string) => readFile(path.join(dir, f));
  proxy = tls.createServer(
    {
      key: await read('server.key'),
      cert: await read('server.pem'),
      ca: await read('ca.pem'),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      // Only authorized peers get here (rejectUnauthorized); pipe the decrypted stream on.
      const upstream = net.connect(Number(port), host);
      socket.pipe(upstream).pipe(socket);
      const close = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close);
      upstream.on('error', close);
      socket.on('close', close);
      upstream.on('close', close);
    },
  );
  proxy.on('tlsClientError', (err) => handshakeErrors.push(err.message));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyAddress = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  tlsEnv = {
    QWENOPS_TEMPORAL_ADDRESS: proxyAddress,
    QWENOPS_TEMPORAL_TLS_CERT: path.join(dir, 'client.pem'),
    QWENOPS_TEMPORAL_TLS_KEY: path.join(dir, 'client.key'),
    QWENOPS_TEMPORAL_TLS_CA: path.join(dir, 'ca.pem'),
    QWENOPS_TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
  };
});

afterAll(async () => {
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await env?.teardown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs fn with these QWENOPS_* variables in process.env (what the CLI reads). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('mTLS to Temporal', () => {
  it('runs a workflow through the mTLS proxy: worker and CLI client with the client certificate', async () => {
    const config = loadConfig({ env: tlsEnv });
    // As workers/run.ts connects.
    const connection = await NativeConnection.connect({
      address: config.temporal.address,
      tls: temporalTls(config.temporal),
    });
    const runEndpointLoadTest = async (): Promise<EndpointLoadTestResult> =>
      ({ passed: true, reasons: [], reportHtmlUri: 'file:///r.html' }) as unknown as EndpointLoadTestResult;
    const workers = await Promise.all([
      Worker.create({
        connection,
        taskQueue: TASK_QUEUES.default,
        workflowBundle: await workflowBundle(),
        activities: specActivities,
      }),
      Worker.create({ connection, taskQueue: TASK_QUEUES.cluster, activities: { runEndpointLoadTest } }),
    ]);
    const running = workers.map((w) => w.run());
    try {
      const result = await withEnv(tlsEnv, async () => {
        const ctx = new CliContext({});
        try {
          const client = await ctx.client();
          const handle = await client.workflow.start(loadTest, {
            args: [
              { request: { url: 'http://127.0.0.1:9/v1', mode: 'closed', concurrency: 1, maxRequests: 1 } },
            ],
            taskQueue: TASK_QUEUES.default,
            workflowId: `mtls-${randomUUID()}`,
          });
          return await handle.result();
        } finally {
          await ctx.close();
        }
      });
      expect(result.passed).toBe(true);
      expect(result.workflowId).toMatch(/^mtls-/);
    } finally {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
      await connection.close();
    }
  });

  it('refuses a client without a client certificate', async () => {
    const config = loadConfig({
      env: { ...tlsEnv, QWENOPS_TEMPORAL_TLS_CERT: '', QWENOPS_TEMPORAL_TLS_KEY: '' },
    });
    const tlsOptions = temporalTls(config.temporal);
    expect(tlsOptions?.clientCertPair).toBeUndefined();
    expect(tlsOptions?.serverRootCACertificate).toBeDefined();
    handshakeErrors.length = 0;
    await expect(
      Connection.connect({ address: proxyAddress, tls: tlsOptions, connectTimeout: '5s' }),
    ).rejects.toThrow();
    await expect(NativeConnection.connect({ address: proxyAddress, tls: tlsOptions })).rejects.toThrow();
    // The same CLI path as above, without the certificate.
    await withEnv({ ...tlsEnv, QWENOPS_TEMPORAL_TLS_CERT: '', QWENOPS_TEMPORAL_TLS_KEY: '' }, async () => {
      const ctx = new CliContext({});
      await expect(ctx.client()).rejects.toThrow();
      await ctx.close().catch(() => undefined);
    });
    // Refused for the missing certificate, not for anything else.
    expect(handshakeErrors.length).toBeGreaterThan(0);
    for (const message of handshakeErrors) expect(message).toMatch(/peer did not return a certificate/);
  });

  it('needs both the client certificate and its key', () => {
    expect(() => loadConfig({ env: { QWENOPS_TEMPORAL_TLS_CERT: '/x/client.pem' } })).toThrow(
      /QWENOPS_TEMPORAL_TLS_CERT and QWENOPS_TEMPORAL_TLS_KEY/,
    );
  });
});
