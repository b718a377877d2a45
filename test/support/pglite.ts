import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import { freePort, waitForPort } from './ports.js';
import { type ManagedProcess, startProcess } from './processes.js';

// The embedded database for one test file: PGlite + pgvector in its own process (as in
// the embedded default), persisted in a temporary data directory, reached by `pg` over
// the PostgreSQL wire protocol at `url`.

export interface RunningPglite {
  url: string;
  port: number;
  dataDir: string;
  process: ManagedProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function startPglite(
  options: { idleInTransactionTimeoutMs?: number; timeoutMs?: number } = {},
): Promise<RunningPglite> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-pglite-'));
  const port = await freePort();
  const child = startProcess(
    'pglite',
    [
      ...nodeEntrypoint('src/knowledge/pglite/main'),
      '--data-dir',
      dataDir,
      '--port',
      String(port),
      '--idle-in-transaction-timeout-ms',
      String(options.idleInTransactionTimeoutMs ?? 60_000),
    ],
    { env: { QWENOPS_LOG_LEVEL: process.env.QWENOPS_TEST_LOG_LEVEL ?? 'warn' } },
  );
  const stop = async () => {
    await child.kill();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      waitForPort(port, options.timeoutMs ?? 60_000),
      child.exited.then((code) => {
        throw new Error(`the PGlite server exited with code ${code}`);
      }),
    ]);
  } catch (err) {
    const output = child.output();
    await stop();
    throw new Error(`PGlite did not start: ${(err as Error).message}\n${output}`);
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    process: child,
    output: child.output,
    stop,
  };
}
