import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  InputValidationError,
  issuesFromZod,
  modelIdSchema,
  revisionSchema,
  storageKeyProblem,
  storageKeySchema,
} from '../domain/validation.js';
import type { HubFile, ModelHub, ResolvedModel } from '../hub/port.js';
import { HubError } from '../hub/port.js';
import { isAbortError, isRetryableHubFailure } from '../hub/transient.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { manifestKey } from '../storage/manifest.js';
import type { ArtifactStore, Manifest, ManifestFile } from '../storage/port.js';
import { StorageError } from '../storage/port.js';

// Hub -> object store, resumable and verified. Per file: skip when the store already holds
// it with the right sha256 (a retried activity resumes where the last attempt stopped);
// else download to <stagingDir>/<digest>.incomplete, resuming with Range from its current
// size, verify size and sha256, put into the store (temp key then copy, checksum enforced),
// delete the staging file. The manifest is written last: its presence means the prefix is
// complete. No Temporal here: the activity wraps this and heartbeats from onProgress.

export interface DownloadProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  /** Files already in the store with the right checksum (not downloaded again). */
  filesSkipped: number;
  /** Bytes fetched from the hub by this call (0 when everything was already stored or staged). */
  bytesDownloaded: number;
  /** The file whose bytes moved last. */
  currentFile?: string;
}

export interface DownloadModelInput {
  hub: ModelHub;
  store: ArtifactStore;
  resolved: ResolvedModel;
  /** Store prefix the model's files go under, e.g. "models/qwen/Qwen-7B-Chat/<commit>". */
  prefix: string;
  /** Local directory for partial downloads; keep it across retries to resume. */
  stagingDir: string;
  signal?: AbortSignal;
  /** Throttled (progressIntervalMs), plus once at the end; must be cheap. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Files transferred at once (default 2). */
  concurrency?: number;
  /** Minimum gap between progress callbacks (default 1000 ms). */
  progressIntervalMs?: number;
  /** Resume attempts per file after a dropped transfer, within this call (default 5). */
  maxResumeAttempts?: number;
  /** Wait before resume attempt n is n * resumeDelayMs (default 500 ms). */
  resumeDelayMs?: number;
  /** Extra provenance for the manifest (workflow id, requested by, ...). */
  metadata?: Record<string, unknown>;
  logger?: Logger;
}

/** The shape a ResolvedModel must have when it arrives as activity input (from workflow history). */
export const resolvedModelSchema = z.object({
  model: modelIdSchema,
  revision: revisionSchema,
  commit: z
    .string()
    .regex(/^[0-9a-f]{7,64}$/, 'must be a hex commit id')
    .optional(),
  files: z
    .array(
      z.object({
        path: storageKeySchema,
        size: z.number().int().min(0),
        sha256: z
          .string()
          .regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters')
          .optional(),
      }),
    )
    .min(1, 'must list at least one file'),
  totalBytes: z.number().int().min(0),
  needsTrustRemoteCode: z.boolean(),
});

function validateInput(input: DownloadModelInput): void {
  const issues = [];
  const prefixProblem = storageKeyProblem(input.prefix);
  if (prefixProblem)
    issues.push({ path: 'prefix', message: `${JSON.stringify(input.prefix)} ${prefixProblem}` });
  if (input.stagingDir === '' || typeof input.stagingDir !== 'string') {
    issues.push({ path: 'stagingDir', message: 'must be a directory path' });
  }
  const concurrency = input.concurrency ?? 2;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 32) {
    issues.push({ path: 'concurrency', message: 'must be an integer from 1 to 32' });
  }
  const resolved = resolvedModelSchema.safeParse(input.resolved);
  if (!resolved.success) {
    issues.push(...issuesFromZod(resolved.error).map((i) => ({ ...i, path: `resolved.${i.path}` })));
  } else {
    const seen = new Set<string>();
    input.resolved.files.forEach((f, i) => {
      if (seen.has(f.path))
        issues.push({ path: `resolved.files.${i}.path`, message: `${f.path} is listed twice` });
      seen.add(f.path);
    });
  }
  if (issues.length > 0) throw new InputValidationError('model download input', issues);
}

/** True when `manifest` records exactly the files `resolved` lists, from the same model and revision. */
export function manifestMatchesResolved(manifest: Manifest, resolved: ResolvedModel): boolean {
  const meta = manifest.metadata;
  if (meta.model !== resolved.model) return false;
  if (resolved.commit ? meta.commit !== resolved.commit : meta.revision !== resolved.revision) return false;
  if (manifest.files.length !== resolved.files.length) return false;
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  return resolved.files.every((f) => {
    const recorded = byPath.get(f.path);
    return recorded !== undefined && recorded.size === f.size && (!f.sha256 || recorded.sha256 === f.sha256);
  });
}

/** Staging file name: stable per (model, commit-or-revision, path, size, sha256), so a retry finds it. */
export function stagingFileName(resolved: ResolvedModel, file: HubFile): string {
  const identity = [
    resolved.model,
    resolved.commit ?? resolved.revision,
    file.path,
    file.size,
    file.sha256 ?? '',
  ].join('\n');
  return createHash('sha256').update(identity).digest('hex');
}

export async function downloadModelToStore(input: DownloadModelInput): Promise<Manifest> {
  validateInput(input);
  const { hub, store, resolved, signal } = input;
  const prefix = input.prefix.replace(/\/+$/, '');
  const log = (input.logger ?? createLogger('model-download')).child({
    model: resolved.model,
    revision: resolved.revision,
    prefix,
  });
  signal?.throwIfAborted();

  // An unreadable manifest counts as absent (it is rewritten at the end); an unreachable store does not.
  const existing = await store.readManifest(prefix).catch((err: unknown) => {
    if (err instanceof StorageError && err.code === 'NotFound') return undefined;
    throw err;
  });
  if (existing && manifestMatchesResolved(existing, resolved)) {
    log.info(
      { files: existing.files.length },
      'manifest already matches the resolved listing; nothing to download',
    );
    input.onProgress?.({
      bytesDone: existing.totalBytes,
      bytesTotal: existing.totalBytes,
      filesDone: existing.files.length,
      filesTotal: existing.files.length,
      filesSkipped: existing.files.length,
      bytesDownloaded: 0,
    });
    return existing;
  }
  if (existing) {
    // A manifest vouches for the files it lists; it must go before any of them may change.
    log.warn('existing manifest does not match the resolved listing; replacing it');
    await store.delete(manifestKey(prefix));
  }

  await mkdir(input.stagingDir, { recursive: true });
  const progress = new ProgressReporter(
    input.onProgress,
    input.progressIntervalMs ?? 1000,
    resolved.totalBytes,
    resolved.files.length,
  );
  const transfer = new FileTransfer(input, prefix, progress, log);

  // Bounded pool; the first failure stops the others (their staging files stay for resume)
  // and every worker settles before we return, so nothing is left writing to the store.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const results: ManifestFile[] = new Array(resolved.files.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < resolved.files.length && !stop.signal.aborted) {
      const index = next++;
      const file = resolved.files[index] as HubFile;
      try {
        results[index] = await transfer.run(file, stop.signal);
      } catch (error) {
        if (failure === undefined) {
          failure = { error };
          stop.abort(error);
        }
      }
    }
  };
  try {
    const workers = Math.min(input.concurrency ?? 2, resolved.files.length);
    await Promise.all(Array.from({ length: workers }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) throw signal.reason;
  if (failure !== undefined) throw failure.error;

  const manifest = await store.writeManifest(prefix, results, {
    ...input.metadata,
    model: resolved.model,
    revision: resolved.revision,
    commit: resolved.commit,
    hub: hub.kind,
    needsTrustRemoteCode: resolved.needsTrustRemoteCode,
  });
  progress.emit(undefined, true);
  log.info(
    { files: results.length, totalBytes: manifest.totalBytes, skipped: progress.filesSkipped },
    'model downloaded to the store',
  );
  return manifest;
}

class FileTransfer {
  private readonly maxResumeAttempts: number;
  private readonly resumeDelayMs: number;

  constructor(
    private readonly input: DownloadModelInput,
    private readonly prefix: string,
    private readonly progress: ProgressReporter,
    private readonly log: Logger,
  ) {
    this.maxResumeAttempts = input.maxResumeAttempts ?? 5;
    this.resumeDelayMs = input.resumeDelayMs ?? 500;
  }

  async run(file: HubFile, signal: AbortSignal): Promise<ManifestFile> {
    const { store, resolved } = this.input;
    const key = `${this.prefix}/${file.path}`;
    signal.throwIfAborted();
    const existing = await store.stat(key);
    if (
      existing &&
      existing.size === file.size &&
      existing.sha256 !== undefined &&
      (!file.sha256 || existing.sha256 === file.sha256)
    ) {
      this.progress.skipped(file);
      return { path: file.path, size: file.size, sha256: existing.sha256 };
    }

    const base = path.join(this.input.stagingDir, stagingFileName(resolved, file));
    const staging = `${base}.incomplete`;
    const sha256 = await this.fetchToStaging(file, staging, `${base}.mismatch`, signal);
    // The store re-hashes while uploading and refuses anything but the verified bytes.
    await store.put(key, createReadStream(staging, { signal }), {
      expectedSha256: sha256,
      contentType: contentTypeOf(file.path),
    });
    await rm(staging, { force: true });
    await rm(`${base}.mismatch`, { force: true });
    this.progress.fileDone(file);
    return { path: file.path, size: file.size, sha256 };
  }

  /** Download (resuming) into `staging`; returns its verified sha256. */
  private async fetchToStaging(file: HubFile, staging: string, mismatchMarker: string, signal: AbortSignal) {
    const { hub, resolved } = this.input;
    let counted = 0; // bytes of this file already reported as done
    const setCounted = (bytes: number) => {
      this.progress.add(bytes - counted, file.path);
      counted = bytes;
    };
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      let have = await sizeOf(staging);
      if (have > file.size) {
        await rm(staging, { force: true });
        have = 0;
      }
      setCounted(have);
      let hash: ReturnType<typeof createHash> | undefined;
      if (have < file.size) {
        // Hash on the fly only for a transfer from byte 0; a resumed file is hashed at the end.
        hash = have === 0 ? createHash('sha256') : undefined;
        try {
          const source = await hub.openFile(resolved, file.path, have, signal);
          const meter = new Transform({
            transform: (chunk: Buffer, _enc, done) => {
              hash?.update(chunk);
              counted += chunk.length;
              this.progress.downloaded(chunk.length, file.path);
              done(null, chunk);
            },
          });
          await pipeline(source, meter, createWriteStream(staging, { flags: have === 0 ? 'w' : 'a' }), {
            signal,
          });
        } catch (err) {
          if (signal.aborted || isAbortError(err)) throw signal.aborted ? signal.reason : err;
          const now = await sizeOf(staging);
          if (isRetryableHubFailure(err) && attempt < this.maxResumeAttempts) {
            this.log.warn(
              { file: file.path, attempt, bytes: now, size: file.size, err: (err as Error).message },
              'transfer interrupted; resuming',
            );
            await sleep(this.resumeDelayMs * attempt, undefined, { signal });
            continue;
          }
          // Local failures (disk full, permissions) pass through as they are.
          if (err instanceof HubError || !isRetryableHubFailure(err)) throw err;
          throw new HubError(
            'Unavailable',
            `download of ${file.path} (${resolved.model}@${resolved.revision}) interrupted at ${now}/${file.size} bytes after ${attempt} attempts: ${(err as Error).message}`,
            true,
            { cause: err },
          );
        }
      }
      const size = await sizeOf(staging);
      if (size !== file.size) {
        if (size > file.size) await rm(staging, { force: true });
        throw new HubError(
          'Unavailable',
          `${file.path} of ${resolved.model}@${resolved.revision} is ${size} bytes after download, the hub lists ${file.size}`,
          true,
        );
      }
      const sha256 = hash && have === 0 ? hash.digest('hex') : await hashFile(staging, signal);
      if (file.sha256 && sha256 !== file.sha256) {
        await rm(staging, { force: true });
        const previous = (await readFile(mismatchMarker, 'utf8').catch(() => '')).trim();
        await writeFile(mismatchMarker, sha256);
        const repeated = previous === sha256;
        throw new HubError(
          'ChecksumMismatch',
          `${file.path} of ${resolved.model}@${resolved.revision}: downloaded sha256 ${sha256}, the hub publishes ${file.sha256}; ` +
            (repeated
              ? 'the same bytes arrived twice, so the published checksum (or the file) is wrong on the hub: not retrying'
              : 'the download was discarded and the next attempt starts over'),
          !repeated,
        );
      }
      return sha256;
    }
  }
}

class ProgressReporter {
  private bytesDone = 0;
  private bytesDownloaded = 0;
  private filesDone = 0;
  filesSkipped = 0;
  private currentFile: string | undefined;
  private lastEmit = 0;

  constructor(
    private readonly callback: ((progress: DownloadProgress) => void) | undefined,
    private readonly intervalMs: number,
    private readonly bytesTotal: number,
    private readonly filesTotal: number,
  ) {}

  /** Bytes that just arrived from the hub. */
  downloaded(bytes: number, file: string): void {
    this.bytesDownloaded += bytes;
    this.add(bytes, file);
  }

  add(bytes: number, file: string): void {
    this.bytesDone += bytes;
    this.currentFile = file;
    this.emit();
  }

  skipped(file: HubFile): void {
    this.filesSkipped++;
    this.fileDone(file);
    this.add(file.size, file.path);
  }

  fileDone(_file: HubFile): void {
    this.filesDone++;
  }

  emit(currentFile = this.currentFile, force = false): void {
    if (!this.callback) return;
    const now = Date.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.callback({
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      filesDone: this.filesDone,
      filesTotal: this.filesTotal,
      filesSkipped: this.filesSkipped,
      bytesDownloaded: this.bytesDownloaded,
      currentFile,
    });
  }
}

async function sizeOf(file: string): Promise<number> {
  const info = await stat(file).catch(() => undefined);
  return info?.size ?? 0;
}

async function hashFile(file: string, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function contentTypeOf(filePath: string): string {
  if (filePath.endsWith('.json')) return 'application/json';
  if (filePath.endsWith('.py')) return 'text/x-python';
  if (filePath.endsWith('.md') || filePath.endsWith('.txt')) return 'text/plain';
  return 'application/octet-stream';
}
