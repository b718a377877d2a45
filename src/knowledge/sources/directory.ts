import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { confinePath } from '../../config/confinement.js';
import { assertStorageKey, InputValidationError } from '../../domain/validation.js';
import { walkSorted } from '../../storage/walk.js';
import type { KnowledgeSource, ListSourceOptions, SourceEntry } from './port.js';

// A local directory, walked recursively in key order (byte-wise, as S3 lists). Hidden entries (".git",
// ".DS_Store") and anything that is not a regular file are left out (symlinks included).
// With `allowedRoots` (a worker: the path came from workflow input) the directory must lie
// under one of them once resolved, checked before anything in it is listed or read, and
// every document read must still resolve inside it.

export class DirectorySource implements KnowledgeSource {
  readonly root: string;
  readonly description: string;
  private checked: Promise<string> | undefined;

  constructor(
    root: string,
    private readonly options: { allowedRoots?: readonly string[] } = {},
  ) {
    this.root = path.resolve(root);
    this.description = `dir:${this.root}`;
  }

  /** The root's real path, once it passed the confinement (when there is one). */
  private confinedRoot(): Promise<string> {
    const roots = this.options.allowedRoots;
    if (roots === undefined) return Promise.resolve(this.root);
    this.checked ??= confinePath(this.root, roots, {
      subject: 'knowledge re-index request',
      field: 'source.path',
      rule: 'knowledgeRoots',
    });
    // A refusal is not cached as a rejected promise for ever: the next call checks again.
    this.checked.catch(() => {
      this.checked = undefined;
    });
    return this.checked;
  }

  async *list(options: ListSourceOptions = {}): AsyncIterable<SourceEntry> {
    await this.confinedRoot();
    const info = await stat(this.root).catch((err: NodeJS.ErrnoException) => {
      // Missing: bad input, refused without retries. Anything else (EIO, EACCES) is rethrown.
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (!info?.isDirectory())
      throw new InputValidationError('knowledge source', [
        {
          path: 'source.path',
          message: `directory ${this.root} does not exist or is not a directory (on this worker)`,
        },
      ]);
    // Sorted as S3 sorts (src/storage/walk.ts), resuming after the cursor without
    // visiting what lies before it; one directory's entries in memory at a time.
    for await (const entry of walkSorted(this.root, {
      startAfter: options.startAfter,
      skip: (dirent) => dirent.name.startsWith('.') || dirent.isSymbolicLink(),
    })) {
      const info = await stat(entry.path).catch(() => undefined);
      // Gone since the directory was read: not listed (the sweep handles it).
      if (info?.isFile()) yield { key: entry.key, size: info.size };
    }
  }

  private pathOf(key: string): string {
    return path.join(this.root, ...assertStorageKey(key, 'source key').split('/'));
  }

  /** The document's path; confined: it must resolve (symlinks too) inside the real root. */
  private async confinedPathOf(key: string): Promise<string> {
    const file = this.pathOf(key);
    if (this.options.allowedRoots === undefined) return file;
    const root = await this.confinedRoot();
    const real = await realpath(file);
    if (real !== root && !real.startsWith(`${root}${path.sep}`)) {
      throw Object.assign(new Error(`source key ${JSON.stringify(key)} resolves outside ${this.root}`), {
        code: 'EACCES',
      });
    }
    return real;
  }

  async read(key: string): Promise<Buffer> {
    return readFile(await this.confinedPathOf(key));
  }

  async exists(key: string): Promise<boolean> {
    const file = await this.confinedPathOf(key).catch(() => undefined);
    if (file === undefined) return false;
    return (await stat(file).catch(() => undefined))?.isFile() === true;
  }

  uri(key: string): string {
    return pathToFileURL(this.pathOf(key)).href;
  }
}
