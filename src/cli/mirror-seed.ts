import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFixtureModel } from '../hub/fixture-model.js';

// What the embedded stack's local model mirror holds for `make demo` and `qwenops dev`: the
// FIXTURE of qwen/Qwen-7B-Chat (not real weights; see src/hub/fixture-model.ts) at the
// revisions the demo promotes, so `promoteModel` started from the UI with
// {"model":"qwen/Qwen-7B-Chat"} finds its model on a fresh state dir.

export const DEMO_MODEL = 'qwen/Qwen-7B-Chat';
export const DEMO_MODEL_REVISIONS = ['master', 'v1.1'] as const;

export interface MirrorSeedResult {
  /** Revisions written now. */
  seeded: string[];
  /** Revisions already in the mirror, left as they are (a fixture, or what the user put there). */
  present: string[];
}

async function nonEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Seeds `<mirrorDir>/qwen/Qwen-7B-Chat/<revision>/` with the fixture model for each demo
 * revision that is not there yet. Idempotent: a revision directory that exists is never
 * touched. Each revision is written into a temp directory and renamed into place, so an
 * interrupted seed leaves no half-written model behind (and the next one completes it).
 */
export async function seedDemoMirror(mirrorDir: string): Promise<MirrorSeedResult> {
  const result: MirrorSeedResult = { seeded: [], present: [] };
  const root = path.resolve(mirrorDir);
  for (const revision of DEMO_MODEL_REVISIONS) {
    const target = path.join(root, ...DEMO_MODEL.split('/'), revision);
    if (await nonEmptyDir(target)) {
      result.present.push(revision);
      continue;
    }
    // A dot directory at the mirror root: not an <owner>/<name>/<revision> the hub would list.
    const temp = path.join(root, `.qwenops-seed-${randomUUID()}`);
    try {
      const fixture = await writeFixtureModel(temp, DEMO_MODEL, revision);
      await mkdir(path.dirname(target), { recursive: true });
      // An empty directory in the way (never a full one: rmdir refuses those).
      await rmdir(target).catch(() => undefined);
      try {
        await rename(fixture.root, target);
        result.seeded.push(revision);
      } catch (err) {
        // Another seeder won the race: its copy is the same fixture.
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !(await nonEmptyDir(target))) throw err;
        result.present.push(revision);
      }
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }
  return result;
}
