import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

// The daemon's state on disk: one JSON file per object, replaced atomically (temp file +
// rename) so a crash never leaves a half-written record.

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${randomUUID()}.tmp`;
  await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`);
  await rename(temp, file);
}

export async function readJsonFile<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Every *.json file under dir (recursively), parsed. */
export async function readJsonTree<T>(dir: string): Promise<T[]> {
  const out: T[] = [];
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.json')) continue;
    const value = await readJsonFile<T>(path.join(entry.parentPath, entry.name));
    if (value !== undefined) out.push(value);
  }
  return out;
}

export async function removeFile(file: string): Promise<void> {
  await rm(file, { force: true });
}
