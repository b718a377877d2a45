import type { ChildProcess } from 'node:child_process';
import net from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1 (bound, then released for the caller). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * Resolves when something accepts connections on 127.0.0.1:port. Rejects when `child` (the
 * process that should listen) exits first, or after timeoutMs.
 */
export async function waitForListening(
  port: number,
  timeoutMs: number,
  child: ChildProcess,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `${what} exited (${child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`}) before listening (see its log)`,
      );
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline)
      throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
