import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { storageKeyProblem } from '../domain/validation.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { checkModelAndRevision } from './modelscope.js';
import { HubError, type HubFile, type ModelHub, type ResolvedModel } from './port.js';

// The embedded default hub: a directory laid out as <root>/<owner>/<name>/<revision>/...
// (what `snapshot_download` leaves, or what the demo seeds with the fixture model). A
// directory publishes no hashes, so sha256 is computed once per file and cached in a sidecar
// beside the revision directories, keyed by size and mtime so an edited file is re-hashed.

const SIDECAR_PREFIX = '.qwenops-sha256-';
const SKIPPED_NAMES = new Set(['.git', '.gitattributes', '.gitignore']);

const sidecarSchema = z.object({
  version: z.literal(1),
  files: z.record(z.string(), z.object({ size: z.number(), mtimeMs: z.number(), sha256: z.string() })),
});
type Sidecar = z.infer<typeof sidecarSchema>;

export interface LocalMirrorHubOptions {
  root: string;
  logger?: Logger;
}

export class LocalMirrorHub implements ModelHub {
  readonly kind = 'local' as const;
  readonly root: string;
  private readonly log: Logger;

  constructor(options: LocalMirrorHubOptions) {
    this.root = path.resolve(options.root);
    this.log = options.logger ?? createLogger('hub.local');
  }

  private revisionDir(model: string, revision: string): string {
    return path.join(this.root, ...model.split('/'), revision);
  }

  async resolve(model: string, revision: string, signal?: AbortSignal): Promise<ResolvedModel> {
    checkModelAndRevision(model, revision);
    const dir = this.revisionDir(model, revision);
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new HubError(
        'NotFound',
        `model ${model} (revision ${revision}) not found in the local mirror at ${dir}`,
        false,
      );
    }
    const realRoot = await realpath(this.root);
    const found = await this.walk(dir, dir, realRoot);
    if (found.length === 0) {
      throw new HubError('NotFound', `model ${model} (revision ${revision}) has no files in ${dir}`, false);
    }
    const sidecarPath = path.join(path.dirname(dir), `${SIDECAR_PREFIX}${revision}.json`);
    const sidecar = await readSidecar(sidecarPath);
    let changed = false;
    const files: HubFile[] = [];
    for (const file of found) {
      signal?.throwIfAborted();
      const cached = sidecar.files[file.path];
      let sha256 =
        cached && cached.size === file.size && cached.mtimeMs === file.mtimeMs ? cached.sha256 : undefined;
      if (!sha256) {
        sha256 = await hashFile(file.full, signal);
        sidecar.files[file.path] = { size: file.size, mtimeMs: file.mtimeMs, sha256 };
        changed = true;
      }
      files.push({ path: file.path, size: file.size, sha256 });
    }
    for (const key of Object.keys(sidecar.files)) {
      if (!found.some((f) => f.path === key)) {
        delete sidecar.files[key];
        changed = true;
      }
    }
    if (changed) {
      await writeSidecar(sidecarPath, sidecar).catch((err: unknown) =>
        // A read-only mirror still works; it just hashes again next time.
        this.log.warn(
          { sidecar: sidecarPath, err: (err as Error).message },
          'could not cache sha256 sidecar',
        ),
      );
    }
    return {
      model,
      revision,
      commit: /^[0-9a-f]{40}$/.test(revision) ? revision : undefined,
      files,
      totalBytes: files.reduce((sum, f) => sum + f.size, 0),
      needsTrustRemoteCode: files.some((f) => f.path.endsWith('.py')),
    };
  }

  /** Files under `dir`, sorted; symlinks followed only while they stay inside the mirror. */
  private async walk(
    top: string,
    dir: string,
    realRoot: string,
  ): Promise<{ path: string; full: string; size: number; mtimeMs: number }[]> {
    const out: { path: string; full: string; size: number; mtimeMs: number }[] = [];
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (SKIPPED_NAMES.has(entry.name)) continue;
      const full = path.join(dir, entry.name);
      const rel = path.relative(top, full).split(path.sep).join('/');
      const problem = storageKeyProblem(rel);
      if (problem)
        throw new HubError('Invalid', `local mirror file ${JSON.stringify(rel)} ${problem}`, false);
      let target = await lstat(full);
      if (target.isSymbolicLink()) {
        const real = await realpath(full).catch(() => undefined);
        if (!real || (real !== realRoot && !real.startsWith(realRoot + path.sep))) {
          throw new HubError(
            'Invalid',
            `local mirror file ${rel} links outside the mirror (${real ?? 'dangling'})`,
            false,
          );
        }
        target = await stat(full);
      }
      if (target.isDirectory()) out.push(...(await this.walk(top, full, realRoot)));
      else if (target.isFile()) out.push({ path: rel, full, size: target.size, mtimeMs: target.mtimeMs });
    }
    return out;
  }

  async openFile(
    resolved: ResolvedModel,
    filePath: string,
    offset: number,
    signal?: AbortSignal,
  ): Promise<Readable> {
    const file = resolved.files.find((f) => f.path === filePath);
    if (!file) {
      throw new HubError(
        'Invalid',
        `${filePath} is not a file of ${resolved.model}@${resolved.revision}`,
        false,
      );
    }
    if (!Number.isInteger(offset) || offset < 0 || offset > file.size) {
      throw new HubError('Invalid', `offset ${offset} is outside ${filePath} (size ${file.size})`, false);
    }
    const full = path.join(this.revisionDir(resolved.model, resolved.revision), ...filePath.split('/'));
    const info = await stat(full).catch(() => undefined);
    if (!info?.isFile()) {
      throw new HubError(
        'NotFound',
        `${filePath} of ${resolved.model}@${resolved.revision} vanished from the mirror`,
        false,
      );
    }
    return createReadStream(full, { start: offset, signal });
  }
}

async function hashFile(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function readSidecar(file: string): Promise<Sidecar> {
  try {
    const parsed = sidecarSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (parsed.success) return parsed.data;
  } catch {
    // Missing or unreadable: start over.
  }
  return { version: 1, files: {} };
}

async function writeSidecar(file: string, sidecar: Sidecar): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${randomUUID()}`;
  await writeFile(temp, `${JSON.stringify(sidecar)}\n`);
  await rename(temp, file);
}
