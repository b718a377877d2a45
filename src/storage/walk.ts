import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { compareKeys } from './port.js';

// A directory tree walked as a flat, sorted key space: keys are "/"-separated paths
// relative to the root, yielded in byte-wise (UTF-8) key order, the order S3 lists in
// (compareKeys), so the fs store, the directory source and MinIO agree on positions and
// cursors. Siblings sort by name, a directory's name with its "/" appended: "a-b" (0x2D)
// comes before everything under "a/" (0x2F), as it does in an S3 listing.
//
// With `startAfter` the walk resumes after that key without visiting what lies before:
// a directory whose keys all sort before it is skipped unread, one that holds it is
// entered and cut the same way. Memory: one directory's entries per level, never the tree.

export interface WalkOptions {
  /** Yield only keys after this one (exclusive). */
  startAfter?: string;
  /** Leaves out an entry (and, for a directory, everything under it). */
  skip?: (entry: Dirent) => boolean;
}

export async function* walkSorted(
  root: string,
  options: WalkOptions = {},
): AsyncGenerator<{ key: string; path: string }> {
  yield* walkDir(root, '', options.startAfter, options.skip);
}

async function* walkDir(
  dir: string,
  prefix: string,
  startAfter: string | undefined,
  skip: ((entry: Dirent) => boolean) | undefined,
): AsyncGenerator<{ key: string; path: string }> {
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => (entry.isDirectory() || entry.isFile()) && !skip?.(entry))
    .map((entry) => ({
      entry,
      name: entry.isDirectory() ? `${prefix}${entry.name}/` : `${prefix}${entry.name}`,
    }))
    .sort((a, b) => compareKeys(a.name, b.name));
  for (const { entry, name } of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (startAfter === undefined) yield* walkDir(full, name, undefined, skip);
      else if (startAfter.startsWith(name)) yield* walkDir(full, name, startAfter, skip);
      // Not under it: every key in it sorts on the same side of startAfter as its name.
      else if (compareKeys(name, startAfter) > 0) yield* walkDir(full, name, undefined, skip);
    } else if (startAfter === undefined || compareKeys(name, startAfter) > 0) {
      yield { key: name, path: full };
    }
  }
}
