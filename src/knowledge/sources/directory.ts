import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertStorageKey } from '../../domain/validation.js';
import type { KnowledgeSource, SourceEntry } from './port.js';

// A local directory, walked recursively in name order. Hidden entries (".git",
// ".DS_Store") and anything that is not a regular file are left out.

export class DirectorySource implements KnowledgeSource {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `dir:${this.root}`;
  }

  async *list(): AsyncIterable<SourceEntry> {
    const info = await stat(this.root).catch(() => undefined);
    if (!info?.isDirectory())
      throw new Error(`knowledge source directory ${this.root} does not exist or is not a directory`);
    const walk = async function* (this: DirectorySource, dir: string): AsyncGenerator<SourceEntry> {
      const entries = await readdir(dir, { withFileTypes: true });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue;
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) yield* walk.call(this, full);
        else if (entry.isFile()) {
          const { size } = await stat(full);
          yield { key: path.relative(this.root, full).split(path.sep).join('/'), size };
        }
      }
    };
    yield* walk.call(this, this.root);
  }

  private pathOf(key: string): string {
    return path.join(this.root, ...assertStorageKey(key, 'source key').split('/'));
  }

  read(key: string): Promise<Buffer> {
    return readFile(this.pathOf(key));
  }

  async exists(key: string): Promise<boolean> {
    return (await stat(this.pathOf(key)).catch(() => undefined))?.isFile() === true;
  }

  uri(key: string): string {
    return pathToFileURL(this.pathOf(key)).href;
  }
}
