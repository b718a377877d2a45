import { readFile } from 'node:fs/promises';
import type { ServingRevisionSpec } from '../../domain/serving-revision.js';
import type { Logger } from '../../observability/logger.js';
import { repoRoot } from '../../runtime/entrypoints.js';
import { ClusterError } from '../port.js';
import { allowedSpecEnv, withoutStoreCredentials } from './env-policy.js';
import { firstErrorSinceStart, tailLines } from './log-tail.js';
import { type GroupProcess, spawnGroup, stopGroup } from './process-group.js';
import type { RevisionRuntime } from './revision-runtime.js';
import { type ProxyFault, TrafficProxy } from './traffic-proxy.js';

// One serving revision = one server process (the sandbox's "pod": a simulator or a real
// vLLM server, see revision-runtime.ts) behind its own sidecar proxy (where fault injection
// applies, as in a service mesh). It is healthy once the server answers its readiness path.
// If it dies after it was healthy it is restarted with a growing back-off, as a Deployment
// would; if it never becomes healthy (it keeps crashing, or the progress deadline passes)
// the revision has FAILED, as Knative marks it, and nothing of it is left running.

export interface RevisionEvents {
  onHealthy(revision: RevisionProcess): void;
  onUnhealthy(revision: RevisionProcess, reason: string): void;
}

export interface RevisionLimits {
  /** Exits before the first healthy answer after which the revision has failed. */
  crashLimit: number;
  /** Longest time from the first start to healthy (Knative's progress deadline). */
  progressDeadlineMs: number;
}

export class RevisionProcess {
  proc?: GroupProcess;
  /** The revision's address (its sidecar's), once the server is up. */
  url?: string;
  /** Where the server itself listens (metrics are scraped here, past the sidecar). */
  serverUrl?: string;
  readonly host = '127.0.0.1';
  /** The server's port. */
  port = 0;
  /** The sidecar's port: what the service's traffic split forwards to. */
  sidecarPort = 0;
  healthy = false;
  restarts = 0;
  lastError?: string;
  /** Set once the revision can no longer become ready. */
  failed?: {
    reason: 'CrashLoopBackOff' | 'ProgressDeadlineExceeded' | 'StorageInitializerFailed';
    message: string;
  };
  private everHealthy = false;
  private startedAt = 0;
  /** Seconds from the first start (storage initializer included) to the first healthy answer. */
  readySeconds?: number;
  private stopped = false;
  private restartTimer?: NodeJS.Timeout;
  private deadlineTimer?: NodeJS.Timeout;
  private readonly launching = new AbortController();
  private readonly sidecar: TrafficProxy;

  constructor(
    readonly name: string,
    readonly spec: ServingRevisionSpec,
    readonly logFile: string,
    private readonly baseEnv: NodeJS.ProcessEnv,
    private readonly runtime: RevisionRuntime,
    private readonly limits: RevisionLimits,
    private readonly events: RevisionEvents,
    private readonly logger: Logger,
  ) {
    this.sidecar = new TrafficProxy(`revision ${name}`, logger);
  }

  get pid(): number | undefined {
    return this.proc && this.proc.pid > 0 ? this.proc.pid : undefined;
  }

  get fault(): ProxyFault | undefined {
    return this.sidecar.currentFault;
  }

  setFault(fault: ProxyFault | undefined): void {
    this.sidecar.setFault(fault);
  }

  /** Starts the sidecar, then the server; failures to launch are recorded, never thrown. */
  async start(): Promise<void> {
    if (this.stopped) return;
    this.startedAt = Date.now();
    this.sidecarPort = await this.sidecar.listen(0);
    this.url = `http://${this.host}:${this.sidecarPort}`;
    this.deadlineTimer = setTimeout(() => {
      if (!this.everHealthy && !this.stopped)
        void this.fail(
          'ProgressDeadlineExceeded',
          `revision ${this.name} did not become ready within ${Math.round(this.limits.progressDeadlineMs / 1000)}s`,
        );
    }, this.limits.progressDeadlineMs);
    await this.launch();
  }

  private async launch(): Promise<void> {
    if (this.stopped || this.failed) return;
    let launch: Awaited<ReturnType<RevisionRuntime['launch']>>;
    try {
      launch = await this.runtime.launch(this.name, this.spec, this.launching.signal);
    } catch (err) {
      if (this.stopped) return;
      const message = `storage initializer: ${(err as Error).message}`;
      if (err instanceof ClusterError && !err.retryable) {
        await this.fail('StorageInitializerFailed', `revision ${this.name}: ${message}`);
      } else {
        this.scheduleRestart(message);
      }
      return;
    }
    if (this.stopped || this.failed) return;
    const proc = spawnGroup(launch.argv, {
      // No store credentials (the storage initializer, in the daemon, copied the model) and
      // only the spec env the sandbox allows (specs persisted before the rule included).
      env: { ...withoutStoreCredentials(this.baseEnv), ...allowedSpecEnv(this.spec.env), ...launch.env },
      cwd: repoRoot,
      logFile: this.logFile,
      banner: `[sandbox] ${new Date().toISOString()} revision ${this.name} (${this.runtime.engine}) start #${this.restarts + 1}: ${launch.argv.join(' ')}`,
    });
    this.proc = proc;
    this.serverUrl = launch.port === 'announced' ? undefined : `http://${this.host}:${launch.port}`;
    if (launch.port !== 'announced') this.port = launch.port;
    void proc.exited.then((exit) => this.onExit(proc, exit));
    void this.waitUntilHealthy(proc);
  }

  private async waitUntilHealthy(proc: GroupProcess): Promise<void> {
    const alive = () => this.proc === proc && !this.stopped && proc.child.exitCode === null;
    // A server that picks its own port (--port 0) announces it in its listening line.
    while (alive() && !this.serverUrl) {
      const text = await readFile(this.logFile, 'utf8').catch(() => '');
      const line = text
        .split('\n')
        .reverse()
        .find((l) => l.includes('"event":"listening"') && l.includes(`"pid":${proc.pid}`));
      if (line) {
        const parsed = JSON.parse(line) as { url: string; port: number };
        this.serverUrl = parsed.url;
        this.port = parsed.port;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.sidecar.setTargets([
      { target: { revision: this.name, host: this.host, port: this.port }, weight: 100 },
    ]);
    while (alive()) {
      const ok = await fetch(`${this.serverUrl}${this.runtime.healthPath}`, {
        signal: AbortSignal.timeout(2000),
      })
        .then((r) => r.status === 200)
        .catch(() => false);
      const warm =
        ok && alive() && this.runtime.warmUp
          ? await this.runtime.warmUp(this.serverUrl ?? '', this.spec, this.launching.signal).then(
              () => true,
              (err: Error) => {
                this.logger.debug({ revision: this.name, err: err.message }, 'warm-up not done yet');
                return false;
              },
            )
          : ok;
      if (warm && alive()) {
        this.healthy = true;
        if (!this.everHealthy) this.readySeconds = (Date.now() - this.startedAt) / 1000;
        this.everHealthy = true;
        clearTimeout(this.deadlineTimer);
        this.lastError = undefined;
        this.logger.info(
          { revision: this.name, url: this.url, server: this.serverUrl, pid: proc.pid },
          'revision healthy',
        );
        this.events.onHealthy(this);
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private async onExit(proc: GroupProcess, exit: { code: number | null; signal: NodeJS.Signals | null }) {
    if (this.proc !== proc || this.stopped) return;
    this.healthy = false;
    const cause = await firstErrorSinceStart(this.logFile);
    const tail = cause ? `first error: ${cause}` : await tailLines(this.logFile, 8);
    const message = `revision ${this.name} process exited (${exit.signal ?? `code ${exit.code}`}); ${tail}`;
    this.restarts++;
    if (!this.everHealthy && this.restarts >= this.limits.crashLimit) {
      await this.fail(
        'CrashLoopBackOff',
        `revision ${this.name} exited ${this.restarts} time(s) before it was ever ready; last exit: ${message}`,
      );
      return;
    }
    this.scheduleRestart(message);
  }

  private scheduleRestart(message: string): void {
    this.lastError = message;
    this.logger.warn(
      { revision: this.name, error: message.slice(0, 500) },
      'revision not running; restarting',
    );
    this.events.onUnhealthy(this, message);
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.restarts, 6));
    this.restartTimer = setTimeout(() => void this.launch(), delay);
  }

  /** The revision can no longer become ready: record why and stop whatever of it runs. */
  private async fail(
    reason: NonNullable<RevisionProcess['failed']>['reason'],
    message: string,
  ): Promise<void> {
    if (this.failed || this.stopped) return;
    this.failed = { reason, message };
    this.healthy = false;
    this.lastError = message;
    clearTimeout(this.restartTimer);
    clearTimeout(this.deadlineTimer);
    this.launching.abort();
    this.logger.warn({ revision: this.name, reason, error: message.slice(0, 1000) }, 'revision failed');
    await stopGroup(this.proc, 5000);
    this.events.onUnhealthy(this, message);
  }

  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    this.healthy = false;
    clearTimeout(this.restartTimer);
    clearTimeout(this.deadlineTimer);
    this.launching.abort();
    await Promise.all([stopGroup(this.proc, graceMs), this.sidecar.close()]);
  }
}
