import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

// Child processes a test starts (servers, workers). Output is kept so a failure can show
// what the process said; stopAll() kills whatever is left, process group included.

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ManagedProcess>();

export function startProcess(
  name: string,
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; echo?: boolean } = {},
): ManagedProcess {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('startProcess: empty argv');
  const child = spawn(cmd, args, {
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let buffer = '';
  const append = (chunk: Buffer) => {
    buffer += chunk.toString();
    if (buffer.length > 2_000_000) buffer = buffer.slice(-1_000_000);
    if (options.echo) process.stderr.write(`[${name}] ${chunk}`);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const managed: ManagedProcess = {
    name,
    child,
    output: () => buffer,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        // Negative pid: the whole process group, so grandchildren go too.
        process.kill(-(child.pid as number), signal);
      } catch {
        child.kill(signal);
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {}
      }, 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(managed);
  void exited.then(() => running.delete(managed));
  return managed;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}

export async function waitForExit(p: ManagedProcess): Promise<number | null> {
  if (p.child.exitCode !== null) return p.child.exitCode;
  const [code] = (await once(p.child, 'exit')) as [number | null];
  return code;
}

/** No such process, or a zombie nobody reaped yet. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
