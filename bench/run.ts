import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { nodeEntrypoint } from '../src/runtime/entrypoints.js';

// `make bench`: every benchmark, one `name=value` line per figure. Each figure is a ratio or
// a difference measured side by side within its suite (candidate vs a baseline on this
// machine). Suites run one after another, each in a process of its own, so one suite's
// memory high-water mark or leftover sockets never leak into another's figures.

const SUITES = [
  'orchestration',
  'loadgen',
  'knowledge-ingest',
  'knowledge-scale',
  'serving-simulator',
  'realmodel',
  'judge',
] as const;

function runSuite(name: string): Promise<number | null> {
  const [cmd, ...args] = nodeEntrypoint(`bench/${name}`);
  const child = spawn(cmd as string, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, QWENOPS_LOG_LEVEL: process.env.QWENOPS_LOG_LEVEL ?? 'warn' },
  });
  // Figures go to stdout; everything else the suite says goes to stderr.
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (/^[a-z0-9_]+=/.test(line)) process.stdout.write(`${line}\n`);
    else process.stderr.write(`[bench:${name}] ${line}\n`);
  });
  child.stderr.pipe(process.stderr);
  return new Promise((resolve) => child.once('exit', resolve));
}

export async function runAll(only: string[] = []): Promise<number> {
  let failed = 0;
  for (const name of SUITES) {
    if (only.length > 0 && !only.includes(name)) continue;
    const t0 = Date.now();
    console.error(`[bench] ${name}: start`);
    const code = await runSuite(name);
    if (code !== 0) failed++;
    console.error(
      `[bench] ${name}: ${code === 0 ? 'done' : `FAILED (exit ${code})`} in ${((Date.now() - t0) / 1000).toFixed(0)}s`,
    );
  }
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runAll(process.argv.slice(2));
}
