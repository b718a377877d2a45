import { open } from 'node:fs/promises';

/** The last `lines` lines of a file, reading at most `maxBytes` from its end. */
export async function tailLines(file: string, lines: number, maxBytes = 1024 * 1024): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, 'r');
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    let text = buffer.toString('utf8');
    if (start > 0) text = text.slice(text.indexOf('\n') + 1); // drop the partial first line
    const all = text.split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-Math.max(0, lines)).join('\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  } finally {
    await handle?.close();
  }
}

export const PROGRESS_MARK = 'QWENOPS_PROGRESS ';

/** The last progress line a Job printed (`QWENOPS_PROGRESS {"percent":40,"message":"..."}`). */
export async function lastProgress(
  file: string,
): Promise<{ percent?: number; message?: string } | undefined> {
  const tail = await tailLines(file, 200, 64 * 1024);
  const lines = tail.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    const at = line.indexOf(PROGRESS_MARK);
    if (at === -1) continue;
    try {
      const parsed = JSON.parse(line.slice(at + PROGRESS_MARK.length)) as {
        percent?: unknown;
        message?: unknown;
      };
      const progress: { percent?: number; message?: string } = {};
      if (typeof parsed.percent === 'number' && Number.isFinite(parsed.percent)) {
        progress.percent = Math.max(0, Math.min(100, parsed.percent));
      }
      if (typeof parsed.message === 'string') progress.message = parsed.message.slice(0, 500);
      return progress;
    } catch {
      // A malformed progress line is ignored, like any other log line.
    }
  }
  return undefined;
}

const ERROR_LINE = /\b[A-Za-z_][\w.]*(Error|Exception): \S/;

/**
 * The first error a process logged after its last start banner (`[sandbox] ... start #n`):
 * in a multi-process server (vLLM's API server, engine core, workers) the root cause comes
 * first and the wrappers that re-raise it come after, so the first is the one that names it.
 */
export async function firstErrorSinceStart(file: string): Promise<string | undefined> {
  const lines = (await tailLines(file, 2000)).split('\n');
  let from = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    if ((lines[i] as string).startsWith('[sandbox] ')) {
      from = i;
      break;
    }
  }
  return lines
    .slice(from)
    .find((l) => ERROR_LINE.test(l) && !l.includes(' WARNING '))
    ?.trim();
}
