import { vi } from 'vitest';
import { main } from '../../../src/cli/main.js';

/** Runs `qwenops <args>` in this process; returns the exit code and what it wrote. */
export async function runCli(...args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  let stderr = '';
  let stdout = '';
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const exitCode = process.exitCode;
  try {
    const code = await main(['node', 'qwenops', ...args]);
    return { code, stderr, stdout };
  } finally {
    err.mockRestore();
    out.mockRestore();
    process.exitCode = exitCode;
  }
}
