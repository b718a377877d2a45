import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { type ReplayResult, type ReplayWorkerOptions, Worker } from '@temporalio/worker';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { toolPath } from './tools.js';

// The golden histories: one JSON file per recorded run, in the form
// `temporal workflow show --output json` prints, plus manifest.json, which says which
// scenario and code version made each one (scripts/record-histories.ts writes both).

export const HISTORIES_DIR = path.join(repoRoot, 'test', 'fixtures', 'histories');

export interface ManifestEntry {
  file: string;
  workflowType: string;
  /** test/support/history-scenarios.ts scenario that produced it. */
  scenario: string;
  ending: string;
  /** Set on copies kept from an older code version (e.g. "before-resolve-spec"). */
  tag?: string;
  /** "k of n" for a run of a chain continued as new. */
  run?: string;
  workflowId: string;
  runId: string;
  events: number;
  /** Index into `recordings`: the code version that made it. */
  recording: number;
}

export interface HistoryManifest {
  about: string;
  recordings: Array<{
    commit: string;
    packageVersion: string;
    /** Files of workflows/, src/domain/, activities/ that differed from the commit. */
    uncommittedWorkflowChanges: number;
    /** sha256 over those folders' .ts files as recorded. */
    workflowCodeSha256?: string;
    /** What code this was, when the commit does not say it (e.g. a tagged older version). */
    note?: string;
    sdkVersion: string;
    server: string;
    recordedAt: string;
  }>;
  histories: ManifestEntry[];
}

const ABOUT =
  'Golden workflow histories, replayed by `make test` (vitest project "replay") against the current workflow code. ' +
  'Recorded by scripts/record-histories.ts from the scenarios in test/support/history-scenarios.ts; ' +
  'see README "Changing a workflow". Keep a history until no worker version that could run such a run remains.';

export async function readManifest(): Promise<HistoryManifest> {
  const file = path.join(HISTORIES_DIR, 'manifest.json');
  if (!existsSync(file)) return { about: ABOUT, recordings: [], histories: [] };
  const manifest = JSON.parse(await readFile(file, 'utf8')) as HistoryManifest;
  return { ...manifest, about: ABOUT };
}

/**
 * One run's history as the operator exports it: exactly what
 * `temporal workflow show --output json` prints for it (namespace "default").
 */
export async function exportHistoryJson(
  address: string,
  run: { workflowId: string; runId: string },
): Promise<{ events: unknown[] }> {
  const { stdout } = await promisify(execFile)(
    toolPath('temporal'),
    [
      'workflow',
      'show',
      '--output',
      'json',
      '--address',
      address,
      '--namespace',
      'default',
      '--workflow-id',
      run.workflowId,
      '--run-id',
      run.runId,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as { events: unknown[] };
}

export interface GoldenHistory {
  entry: ManifestEntry;
  /** The file as exported: JSON events, string event ids (what runReplayHistories converts). */
  json: { events: unknown[] };
}

/** Every history the manifest lists; fails when a file and the manifest disagree. */
export async function loadGoldenHistories(): Promise<GoldenHistory[]> {
  const manifest = await readManifest();
  const files = (await readdir(HISTORIES_DIR)).filter((f) => f.endsWith('.json') && f !== 'manifest.json');
  const listed = new Set(manifest.histories.map((h) => h.file));
  const unlisted = files.filter((f) => !listed.has(f));
  if (unlisted.length > 0) throw new Error(`histories missing from manifest.json: ${unlisted.join(', ')}`);
  return Promise.all(
    manifest.histories.map(async (entry) => ({
      entry,
      json: JSON.parse(await readFile(path.join(HISTORIES_DIR, entry.file), 'utf8')) as { events: unknown[] },
    })),
  );
}

interface MarkerEvent {
  markerRecordedEventAttributes?: {
    markerName?: string | null;
    details?: Record<string, { payloads?: Array<{ data?: string | Uint8Array | null }> | null }> | null;
  } | null;
}

/** The patch ids a history recorded (`patched()` markers), from a JSON export or a history object. */
export function patchIdsOf(history: { events?: unknown[] | null }): string[] {
  return (history.events ?? []).flatMap((event) => {
    const marker = (event as MarkerEvent).markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_patch') return [];
    const data = marker.details?.['patch-data']?.payloads?.[0]?.data;
    if (!data) return [];
    const text =
      typeof data === 'string'
        ? Buffer.from(data, 'base64').toString('utf8')
        : Buffer.from(data).toString('utf8');
    return [(JSON.parse(text) as { id: string }).id];
  });
}

/** Replays every history with one replay worker; one result per history, in order. */
export async function replayAll(
  options: ReplayWorkerOptions,
  histories: Array<{ workflowId: string; history: unknown }>,
): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const result of Worker.runReplayHistories(options, histories)) results.push(result);
  return results;
}

/**
 * A scratch directory for workflow code variants (a bundle with an extra step, a changed
 * default), inside the repository so that webpack resolves node_modules from it.
 */
export async function variantDir(name: string): Promise<string> {
  const base = path.join(repoRoot, '.qwenops', 'workflow-variants');
  await mkdir(base, { recursive: true });
  return mkdtemp(path.join(base, `${name}-`));
}

/** Writes `files` (relative path -> text) under `dir`. */
export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }
}
