import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

// Keeps the embedded stack's processes (Temporal dev server, sandbox daemon, database,
// worker) up, as a process manager would: each runs in its own process group with its
// output appended to a log file. A process that exits while the stack is not stopping is
// logged (one structured line: which one, exit code or signal, the tail of its stderr) and
// started again after a backoff; more than `maxRestarts` restarts within `windowMs` gives
// up: the whole stack is stopped and `failure` resolves. stop() stops every process group,
// last started first (SIGTERM, SIGKILL after a grace period), and leaves none behind.

export interface SupervisedSpec {
  name: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  /** Resolves when a freshly started process serves; rejects when it exits first or times out. */
  ready: (child: ChildProcess) => Promise<void>;
  /** Runs before every restart (not before the first start). */
  beforeRestart?: () => void | Promise<void>;
}

/** The structured-log calls the supervisor makes (a pino Logger fits). */
export interface SupervisorLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface SupervisorOptions {
  logger: SupervisorLogger;
  /** Restarts allowed within windowMs; one more exit stops the stack (default 5). */
  maxRestarts?: number;
  windowMs?: number;
  /** Delay before restart n (0-based, within the window): default 500 ms doubling, capped at 10 s. */
  backoffMs?: (n: number) => number;
  /** SIGTERM -> SIGKILL grace per process group on stop (default 15 s). */
  stopGraceMs?: number;
  /** How long a restarted process may take to be ready before it is killed (and counted). */
  readyTimeoutMs?: number;
}

export interface SupervisorFailure {
  child: string;
  message: string;
}

interface Entry {
  spec: SupervisedSpec;
  child: ChildProcess;
  out: WriteStream;
  stderrTail: string;
  supervised: boolean;
  restarts: number[];
  restartTimer?: NodeJS.Timeout;
}

const STDERR_TAIL_BYTES = 4096;
const STDERR_TAIL_LINES = 20;

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {}
}

function exitedAlready(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export class Supervisor {
  private readonly entries: Entry[] = [];
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private readonly maxRestarts: number;
  private readonly windowMs: number;
  private readonly backoffMs: (n: number) => number;
  private readonly stopGraceMs: number;
  private readonly readyTimeoutMs: number;
  private resolveFailure!: (failure: SupervisorFailure) => void;
  /** Resolves once, when a process kept crashing and the supervisor stopped everything. */
  readonly failure: Promise<SupervisorFailure>;

  constructor(private readonly options: SupervisorOptions) {
    this.maxRestarts = options.maxRestarts ?? 5;
    this.windowMs = options.windowMs ?? 60_000;
    this.backoffMs = options.backoffMs ?? ((n) => Math.min(10_000, 500 * 2 ** n));
    this.stopGraceMs = options.stopGraceMs ?? 15_000;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
    this.failure = new Promise((resolve) => {
      this.resolveFailure = resolve;
    });
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /** PIDs (= process group ids) of the processes running now, by name. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.entries) if (e.child.pid && !exitedAlready(e.child)) out[e.spec.name] = e.child.pid;
    return out;
  }

  /**
   * Starts a process and waits until it is ready; from then on it is supervised. A process
   * that fails to start is not restarted: the error is thrown (the caller stops the stack).
   */
  async start(spec: SupervisedSpec): Promise<ChildProcess> {
    if (this.stopping) throw new Error(`not starting ${spec.name}: the stack is stopping`);
    const entry: Entry = {
      spec,
      child: undefined as unknown as ChildProcess,
      out: createWriteStream(spec.logFile, { flags: 'a' }),
      stderrTail: '',
      supervised: false,
      restarts: [],
    };
    this.entries.push(entry);
    this.spawn(entry);
    await spec.ready(entry.child);
    if (this.stopping) throw new Error(`${spec.name} started while the stack was stopping`);
    entry.supervised = true;
    return entry.child;
  }

  private spawn(entry: Entry): void {
    const [cmd, ...args] = entry.spec.argv;
    const child = spawn(cmd as string, args, {
      env: entry.spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a stop reaches whatever it started, and a Ctrl-C in the
      // terminal reaches the stack (which stops everything in order), not each process.
      detached: true,
    });
    entry.child = child;
    entry.stderrTail = '';
    child.stdout?.pipe(entry.out, { end: false });
    child.stderr?.pipe(entry.out, { end: false });
    child.stderr?.on('data', (chunk: Buffer) => {
      entry.stderrTail = (entry.stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
    });
    child.once('error', (err) => {
      entry.stderrTail += `\nspawn failed: ${err.message}`;
    });
    child.once('exit', (code, signal) => void this.onExit(entry, child, code, signal));
  }

  private async onExit(
    entry: Entry,
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): Promise<void> {
    signalGroup(child.pid, 'SIGKILL'); // whatever the leader left behind in its group
    if (this.stopping || !entry.supervised || entry.child !== child) return;
    // The last stderr bytes may still be in the pipe: give them a moment.
    if (child.stderr && !child.stderr.readableEnded)
      await new Promise((r) => {
        const timer = setTimeout(r, 300);
        child.stderr?.once('end', () => {
          clearTimeout(timer);
          r(undefined);
        });
      });
    if (this.stopping) return;
    const now = Date.now();
    entry.restarts = entry.restarts.filter((t) => now - t < this.windowMs);
    const tail = entry.stderrTail.split('\n').filter(Boolean).slice(-STDERR_TAIL_LINES).join('\n');
    const fields = {
      event: 'child_exited',
      child: entry.spec.name,
      pid: child.pid,
      code,
      signal,
      stderrTail: tail,
      logFile: entry.spec.logFile,
      restartsInWindow: entry.restarts.length,
    };
    if (entry.restarts.length >= this.maxRestarts) {
      const message = `${entry.spec.name} exited (${signal ? `signal ${signal}` : `code ${code}`}) after ${entry.restarts.length} restarts within ${this.windowMs / 1000} s: giving up and stopping the whole stack (see ${entry.spec.logFile})`;
      this.options.logger.error({ ...fields, event: 'child_gave_up' }, message);
      await this.stop();
      this.resolveFailure({ child: entry.spec.name, message });
      return;
    }
    const delay = this.backoffMs(entry.restarts.length);
    this.options.logger.error(
      { ...fields, restartInMs: delay },
      `${entry.spec.name} exited unexpectedly; restarting it`,
    );
    entry.restarts.push(now);
    entry.restartTimer = setTimeout(() => void this.restart(entry), delay);
  }

  private async restart(entry: Entry): Promise<void> {
    entry.restartTimer = undefined;
    if (this.stopping) return;
    try {
      await entry.spec.beforeRestart?.();
    } catch (err) {
      this.options.logger.warn(
        { event: 'child_restart_prepare_failed', child: entry.spec.name, err: (err as Error).message },
        'preparing the restart failed; starting anyway',
      );
    }
    if (this.stopping) return;
    this.spawn(entry);
    const child = entry.child;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        entry.spec.ready(child),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`not ready within ${this.readyTimeoutMs / 1000} s`)),
            this.readyTimeoutMs,
          );
        }),
      ]);
      if (this.stopping || entry.child !== child) return;
      this.options.logger.info(
        {
          event: 'child_restarted',
          child: entry.spec.name,
          pid: child.pid,
          restartsInWindow: entry.restarts.length,
        },
        `${entry.spec.name} restarted and ready`,
      );
    } catch (err) {
      // Exited before it was ready: onExit counts it and restarts again (or gives up).
      // Still running but not ready: kill it, which ends the same way.
      if (!exitedAlready(child) && !this.stopping) {
        this.options.logger.warn(
          { event: 'child_not_ready', child: entry.spec.name, pid: child.pid, err: (err as Error).message },
          `${entry.spec.name} did not become ready after its restart; killing it`,
        );
        signalGroup(child.pid, 'SIGKILL');
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops every process group, last started first; idempotent (later calls wait for the first). */
  stop(log: (line: string) => void = () => undefined): Promise<void> {
    this.stopping = true;
    this.stopped ??= (async () => {
      for (const entry of [...this.entries].reverse()) {
        clearTimeout(entry.restartTimer);
        const child = entry.child;
        if (!exitedAlready(child)) {
          log(`stopping ${entry.spec.name}`);
          const exited = new Promise((r) => child.once('exit', r));
          signalGroup(child.pid, 'SIGTERM');
          const timeout = new Promise((r) => setTimeout(r, this.stopGraceMs, 'timeout').unref());
          if ((await Promise.race([exited, timeout])) === 'timeout') signalGroup(child.pid, 'SIGKILL');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000).unref())]);
        }
        signalGroup(child.pid, 'SIGKILL'); // the leader is gone: nothing of its group stays
        entry.out.end();
      }
    })();
    return this.stopped;
  }

  /** Last resort on process exit (no await possible): SIGKILL every group. */
  killAll(): void {
    for (const entry of this.entries) signalGroup(entry.child?.pid, 'SIGKILL');
  }
}
