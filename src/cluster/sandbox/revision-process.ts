import { readFile } from 'node:fs/promises';
import type { Logger } from '../../observability/logger.js';
import { nodeEntrypoint, repoRoot } from '../../runtime/entrypoints.js';
import type { ServingRevisionSpec } from '../port.js';
import { tailLines } from './log-tail.js';
import { type GroupProcess, spawnGroup, stopGroup } from './process-group.js';

// One serving revision = one serving-simulator process (the sandbox's "pod"), started
// with the revision's env so its QWENOPS_SIM_* faults apply to it alone. It becomes
// healthy once it printed its listening line and /health answers 200; if it dies it is
// restarted with a growing back-off, as a Deployment would.

export const SIMULATOR_MODULE = 'src/llm/simulator/main';

export interface RevisionEvents {
  onHealthy(revision: RevisionProcess): void;
  onUnhealthy(revision: RevisionProcess, reason: string): void;
}

export class RevisionProcess {
  proc?: GroupProcess;
  url?: string;
  host = '127.0.0.1';
  port = 0;
  healthy = false;
  restarts = 0;
  lastError?: string;
  private stopped = false;
  private restartTimer?: NodeJS.Timeout;

  constructor(
    readonly name: string,
    readonly spec: ServingRevisionSpec,
    readonly logFile: string,
    private readonly baseEnv: NodeJS.ProcessEnv,
    private readonly events: RevisionEvents,
    private readonly logger: Logger,
  ) {}

  get pid(): number | undefined {
    return this.proc && this.proc.pid > 0 ? this.proc.pid : undefined;
  }

  start(): void {
    if (this.stopped) return;
    const argv = [
      ...nodeEntrypoint(SIMULATOR_MODULE),
      '--port',
      '0',
      '--model',
      this.spec.servedModelName,
      '--revision',
      this.name,
      '--storage-uri',
      this.spec.storageUri,
      '--max-model-len',
      String(this.spec.vllm.maxModelLen),
    ];
    const proc = spawnGroup(argv, {
      env: { ...this.baseEnv, ...this.spec.env },
      cwd: repoRoot,
      logFile: this.logFile,
      banner: `[sandbox] ${new Date().toISOString()} revision ${this.name} start #${this.restarts + 1}`,
    });
    this.proc = proc;
    this.url = undefined;
    void proc.exited.then((exit) => this.onExit(proc, exit));
    void this.waitUntilHealthy(proc);
  }

  private async waitUntilHealthy(proc: GroupProcess): Promise<void> {
    const alive = () => this.proc === proc && !this.stopped && proc.child.exitCode === null;
    // The listening line carries the port the simulator picked (--port 0).
    while (alive() && !this.url) {
      const text = await readFile(this.logFile, 'utf8').catch(() => '');
      const line = text
        .split('\n')
        .reverse()
        .find((l) => l.includes('"event":"listening"') && l.includes(`"pid":${proc.pid}`));
      if (line) {
        const parsed = JSON.parse(line) as { url: string; port: number };
        this.url = parsed.url;
        this.port = parsed.port;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    while (alive()) {
      const ok = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ok && alive()) {
        this.healthy = true;
        this.lastError = undefined;
        this.logger.info({ revision: this.name, url: this.url, pid: proc.pid }, 'revision healthy');
        this.events.onHealthy(this);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async onExit(proc: GroupProcess, exit: { code: number | null; signal: NodeJS.Signals | null }) {
    if (this.proc !== proc || this.stopped) return;
    this.healthy = false;
    const tail = await tailLines(this.logFile, 5);
    this.lastError = `revision ${this.name} process exited (${exit.signal ?? `code ${exit.code}`}): ${tail}`;
    this.logger.warn({ revision: this.name, exit }, 'revision process exited; restarting');
    this.events.onUnhealthy(this, this.lastError);
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.restarts, 6));
    this.restarts++;
    this.restartTimer = setTimeout(() => this.start(), delay);
  }

  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    this.healthy = false;
    clearTimeout(this.restartTimer);
    await stopGroup(this.proc, graceMs);
  }
}
