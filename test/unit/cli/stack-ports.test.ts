import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_STACK_PORTS, portFree, resolveStackPorts } from '../../../src/cli/embedded-stack.js';
import { loadConfig } from '../../../src/config/config.js';
import { freePort } from '../../support/ports.js';

// Busy machines: the embedded stack (`qwenops dev` / `demo`) must not die because its
// default worker-metrics port is taken (by another stack, or anything else), and test
// stacks must not bind fixed ports at all.

let taken: net.Server;
let takenPort: number;

beforeAll(async () => {
  taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  takenPort = (taken.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => taken.close(r));
});

async function freePorts() {
  return {
    temporalPort: await freePort(),
    uiPort: await freePort(),
    sandboxPort: await freePort(),
    databasePort: await freePort(),
  };
}

describe('embedded stack ports', () => {
  it('serves worker metrics on a free port, and says so, when the default one is taken', async () => {
    const lines: string[] = [];
    const ports = await resolveStackPorts(await freePorts(), (l) => lines.push(l), takenPort);
    expect(ports.metrics).not.toBe(takenPort);
    expect(await portFree(ports.metrics)).toBe(true);
    expect(lines).toEqual([
      `worker metrics: port ${takenPort} is in use (another qwenops stack or exporter?); serving them on 127.0.0.1:${ports.metrics} instead (--metrics-port chooses the port)`,
    ]);
    // The default is the documented 9464 (what `qwenops dev` tries first).
    expect(DEFAULT_STACK_PORTS.metrics).toBe(9464);
  });

  it('keeps the default metrics port when it is free, without a word', async () => {
    const lines: string[] = [];
    const wanted = await freePort();
    const ports = await resolveStackPorts(await freePorts(), (l) => lines.push(l), wanted);
    expect(ports.metrics).toBe(wanted);
    expect(lines).toEqual([]);
  });

  it('never swaps a port the user chose: a taken --metrics-port is an error naming port and flag', async () => {
    await expect(
      resolveStackPorts({ ...(await freePorts()), metricsPort: takenPort }, () => undefined),
    ).rejects.toThrow(
      `port ${takenPort} (worker metrics, --metrics-port ${takenPort}) is in use: choose another port with --metrics-port, or leave the flag out to use a free one`,
    );
  });

  it('refuses a taken Temporal / UI / sandbox / database port, naming its flag', async () => {
    for (const [key, flag] of [
      ['temporalPort', '--temporal-port'],
      ['uiPort', '--ui-port'],
      ['sandboxPort', '--sandbox-port'],
      ['databasePort', '--database-port'],
    ] as const) {
      await expect(
        resolveStackPorts({ ...(await freePorts()), [key]: takenPort }, () => undefined),
      ).rejects.toThrow(
        new RegExp(`port ${takenPort} \\(.*\\) is in use: .* choose another port with ${flag}`),
      );
    }
  });
});

describe('worker metrics address', () => {
  it('QWENOPS_METRICS_ADDRESS="" turns the endpoint off (test stacks bind no fixed port); unset is the default', () => {
    expect(loadConfig({ env: { QWENOPS_METRICS_ADDRESS: '' } }).metrics.address).toBe('');
    expect(loadConfig({ env: {} }).metrics.address).toBe('127.0.0.1:9464');
    expect(loadConfig({ env: { QWENOPS_METRICS_ADDRESS: '127.0.0.1:19464' } }).metrics.address).toBe(
      '127.0.0.1:19464',
    );
    // Other variables still treat empty as unset.
    expect(loadConfig({ env: { QWENOPS_TEMPORAL_ADDRESS: '' } }).temporal.address).toBe('127.0.0.1:7233');
  });
});
