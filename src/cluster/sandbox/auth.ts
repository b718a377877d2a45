import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

// Bearer-token authentication of the sandbox daemon's control API. The daemon makes a new
// random token at every start and writes it to <stateDir>/api-token, mode 0600, so only
// the user who runs the daemon (and its workers) can read it; clients send
// "Authorization: Bearer <token>" and re-read the file once when told 401 (the daemon was
// restarted). Comparison is constant-time (on SHA-256 digests, so lengths never leak).

export const TOKEN_FILE_NAME = 'api-token';

export function tokenFileOf(stateDir: string): string {
  return path.join(stateDir, TOKEN_FILE_NAME);
}

/** Makes a fresh token and writes it (0600, atomically) to <stateDir>/api-token. */
export async function writeNewToken(stateDir: string): Promise<{ token: string; file: string }> {
  const token = randomBytes(32).toString('base64url');
  const file = tokenFileOf(stateDir);
  await mkdir(stateDir, { recursive: true });
  const temp = `${file}.${randomUUID()}.tmp`;
  try {
    await writeFile(temp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600);
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return { token, file };
}

/** The token in a token file; undefined when the file is missing. */
export function readTokenFile(file: string): string | undefined {
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token === '' ? undefined : token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** Whether an Authorization header carries `token` (constant-time). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  const given = match?.[1] ?? '';
  // Compare even when absent, so timing does not tell "missing" from "wrong".
  const equal = timingSafeEqual(digest(given), digest(token));
  return match !== null && equal;
}
