import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

// Local stand-ins for pods: each is a detached process group (so a kill reaches whatever
// it started) with stdout and stderr written straight to a log file, so its output does
// not depend on the daemon staying alive.

export interface GroupProcess {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnGroup(
  argv: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; logFile: string; banner?: string },
): GroupProcess {
  const [command, ...args] = argv;
  if (!command) throw new Error('spawnGroup: empty argv');
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const fd = openSync(options.logFile, 'a');
  try {
    if (options.banner) writeSync(fd, `${options.banner}\n`);
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: 127, signal: null }));
    });
    if (child.pid === undefined) {
      return { child, pid: -1, exited };
    }
    return { child, pid: child.pid, exited };
  } finally {
    closeSync(fd);
  }
}

/** Signals the whole group; false when it no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` is alive and its command line mentions `marker` (guards against pid reuse). */
export function isOurProcess(pid: number, marker: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    // No /proc (not Linux): trust the pid.
    return true;
  }
}

/** SIGTERM to the group, SIGKILL after `graceMs` if it is still there; resolves when it is gone. */
export async function stopGroup(proc: GroupProcess | undefined, graceMs: number): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) {
    if (proc) signalGroup(proc.pid, 'SIGKILL'); // grandchildren the leader left behind
    return;
  }
  signalGroup(proc.pid, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(proc.pid, 'SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
  signalGroup(proc.pid, 'SIGKILL');
}
