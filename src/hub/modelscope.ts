import { pipeline, Readable, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Dispatcher, request } from 'undici';
import { z } from 'zod';
import { retryAfterMs } from '../domain/http.js';
import {
  InputValidationError,
  modelIdProblem,
  revisionSchema,
  storageKeyProblem,
} from '../domain/validation.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { HubError, type HubFile, type ModelHub, type ResolvedModel } from './port.js';
import { isAbortError, isTransientNetworkError } from './transient.js';

// ModelScope over its HTTP API, the calls the official SDK (modelscope/hub/api.py,
// file_download.py) makes:
//   listing:  GET {endpoint}/api/v1/models/{owner}/{name}/repo/files?Revision=&Recursive=true
//             -> {Code, Message, Data: {Files: [{Name, Path, Type: blob|tree, Size, Sha256, Revision}]}}
//   commit:   GET {endpoint}/api/v1/models/{owner}/{name}/commits?Ref=&PageNumber=1&PageSize=1
//             -> {Code, Data: {Commit: [{Id}]}}  (best effort: older servers lack it)
//   download: GET {endpoint}/api/v1/models/{owner}/{name}/repo?Revision=&FilePath=  (HTTP Range)
// Auth: the SDK sends the access token as the `m_session_id` cookie; a Bearer header is
// sent too. The token never appears in logs or error messages.

export interface ModelScopeHubOptions {
  endpoint: string;
  token?: string;
  /** Attempts per HTTP call for 429/5xx/connection failures (default 5). */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt (default 500 ms). */
  baseDelayMs?: number;
  /** Cap on any single wait, Retry-After included (default 30 s). */
  maxDelayMs?: number;
  /** undici timeouts: waiting for response headers, and between body chunks. */
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  dispatcher?: Dispatcher;
  logger?: Logger;
}

const IGNORED_FILES = new Set(['.gitignore', '.gitattributes']);
const SHA256_HEX = /^[0-9a-f]{64}$/;
const COMMIT_HEX = /^[0-9a-f]{40}$/;

const listingSchema = z.object({
  Code: z.number().optional(),
  Success: z.boolean().optional(),
  Message: z.string().nullish(),
  Data: z
    .object({
      Files: z
        .array(
          z.looseObject({
            Name: z.string().optional(),
            Path: z.string(),
            Type: z.string().optional(),
            Size: z.number().int().min(0).optional(),
            Sha256: z.string().nullish(),
            Revision: z.string().nullish(),
          }),
        )
        .nullish(),
    })
    .nullish(),
});

const commitsSchema = z.object({
  Code: z.number().optional(),
  Data: z.object({ Commit: z.array(z.looseObject({ Id: z.string() })).nullish() }).nullish(),
});

export class ModelScopeHub implements ModelHub {
  readonly kind = 'modelscope' as const;
  private readonly endpoint: string;
  private readonly token: string | undefined;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly headersTimeoutMs: number;
  private readonly bodyTimeoutMs: number;
  private readonly dispatcher: Dispatcher | undefined;
  private readonly log: Logger;

  constructor(options: ModelScopeHubOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.token = options.token || undefined;
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.headersTimeoutMs = options.headersTimeoutMs ?? 60_000;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 120_000;
    this.dispatcher = options.dispatcher;
    this.log = options.logger ?? createLogger('hub.modelscope');
  }

  async resolve(model: string, revision: string, signal?: AbortSignal): Promise<ResolvedModel> {
    checkModelAndRevision(model, revision);
    const base = `${this.endpoint}/api/v1/models/${model}`;
    const listingUrl = `${base}/repo/files?${new URLSearchParams({ Revision: revision, Recursive: 'true' })}`;
    const body = await this.getJson(listingUrl, { model, revision, what: 'file listing', signal });
    const files = parseModelScopeListing(model, revision, body);
    const commit = await this.resolveCommit(base, model, revision, signal);
    const resolved: ResolvedModel = {
      model,
      revision,
      commit,
      files,
      totalBytes: files.reduce((sum, f) => sum + f.size, 0),
      needsTrustRemoteCode: files.some((f) => f.path.endsWith('.py')),
    };
    this.log.info(
      { model, revision, commit, files: files.length, totalBytes: resolved.totalBytes },
      'resolved model on ModelScope',
    );
    return resolved;
  }

  private async resolveCommit(
    base: string,
    model: string,
    revision: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    if (COMMIT_HEX.test(revision)) return revision;
    const url = `${base}/commits?${new URLSearchParams({ Ref: revision, PageNumber: '1', PageSize: '1' })}`;
    try {
      const parsed = commitsSchema.safeParse(
        await this.getJson(url, { model, revision, what: 'commit', signal }),
      );
      const id = parsed.success ? parsed.data.Data?.Commit?.[0]?.Id : undefined;
      return id && COMMIT_HEX.test(id) ? id : undefined;
    } catch (err) {
      // The commit is provenance, not a precondition: a server without the endpoint still serves files.
      if (err instanceof HubError && (err.code === 'NotFound' || err.code === 'Invalid')) {
        this.log.warn(
          { model, revision },
          'no commit id for revision; provenance will name the revision only',
        );
        return undefined;
      }
      throw err;
    }
  }

  async openFile(
    resolved: ResolvedModel,
    path: string,
    offset: number,
    signal?: AbortSignal,
  ): Promise<Readable> {
    const file = resolved.files.find((f) => f.path === path);
    if (!file) {
      throw new HubError('Invalid', `${path} is not a file of ${resolved.model}@${resolved.revision}`, false);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset > file.size) {
      throw new HubError('Invalid', `offset ${offset} is outside ${path} (size ${file.size})`, false);
    }
    if (offset === file.size) return Readable.from([]);
    // Pinned to the commit when known, so a branch moving mid-download cannot mix revisions.
    const url = modelScopeFileUrl(this.endpoint, resolved.model, resolved.commit ?? resolved.revision, path);
    const response = await this.send(url, {
      model: resolved.model,
      revision: resolved.revision,
      what: `file ${path}`,
      signal,
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
    });
    if (offset > 0 && response.statusCode === 200) {
      // The server ignored Range: drop the bytes we already have.
      // pipeline (not pipe) so a dropped connection still reaches the reader as an error.
      return pipeline(response.body, skipBytes(offset), () => undefined);
    }
    if (offset > 0 && response.statusCode === 206) {
      const start = /bytes (\d+)-/.exec(String(response.headers['content-range'] ?? ''))?.[1];
      if (start !== undefined && Number(start) !== offset) {
        response.body.destroy();
        throw new HubError(
          'Unavailable',
          `asked ${path} from byte ${offset}, got a range from ${start}`,
          true,
        );
      }
    }
    return response.body;
  }

  private authHeaders(): Record<string, string> {
    if (!this.token) return {};
    return { cookie: `m_session_id=${this.token}`, authorization: `Bearer ${this.token}` };
  }

  private async getJson(url: string, context: RequestContext): Promise<unknown> {
    const response = await this.send(url, { ...context, headers: { accept: 'application/json' } });
    let text: string;
    try {
      text = await response.body.text();
    } catch (err) {
      if (isTransientNetworkError(err)) {
        throw new HubError(
          'Unavailable',
          `ModelScope ${context.what} of ${context.model} was cut off`,
          true,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new HubError(
        'Invalid',
        `ModelScope ${context.what} of ${context.model} is not JSON: ${text.slice(0, 200)}`,
        false,
      );
    }
  }

  /** One HTTP GET with retries on 429/5xx/connection failures; maps the rest to HubError. */
  private async send(url: string, context: RequestContext): Promise<Dispatcher.ResponseData> {
    const { model, revision, what, signal } = context;
    for (let attempt = 1; ; attempt++) {
      let response: Dispatcher.ResponseData;
      try {
        response = await request(url, {
          method: 'GET',
          headers: { 'user-agent': 'qwenops', ...context.headers, ...this.authHeaders() },
          signal,
          dispatcher: this.dispatcher,
          headersTimeout: this.headersTimeoutMs,
          bodyTimeout: this.bodyTimeoutMs,
        });
      } catch (err) {
        if (signal?.aborted || isAbortError(err)) throw signal?.reason ?? err;
        if (!isTransientNetworkError(err)) throw err;
        const message = `ModelScope unreachable for ${what} of ${model}: ${(err as Error).message}`;
        if (attempt >= this.maxAttempts) throw new HubError('Unavailable', message, true, { cause: err });
        await this.backoff(attempt, undefined, message, signal);
        continue;
      }
      const status = response.statusCode;
      if (status < 400) return response;
      const detail = (await response.body.text().catch(() => '')).slice(0, 300);
      if (status === 429 || status >= 500) {
        const message = `ModelScope answered HTTP ${status} for ${what} of ${model}@${revision}`;
        if (attempt >= this.maxAttempts) {
          throw new HubError('Unavailable', `${message} (${attempt} attempts)`, true);
        }
        await this.backoff(attempt, headerValue(response.headers['retry-after']), message, signal);
        continue;
      }
      if (status === 401 || status === 403) {
        throw new HubError(
          'Unauthorized',
          this.token
            ? `ModelScope refused the configured token for ${model} (HTTP ${status}); check hub.token (QWENOPS_HUB_TOKEN)`
            : `ModelScope requires a token for ${model} (HTTP ${status}); set hub.token (QWENOPS_HUB_TOKEN)`,
          false,
        );
      }
      if (status === 404) {
        throw new HubError(
          'NotFound',
          `model ${model} (revision ${revision}) not found on ModelScope: ${what} answered 404`,
          false,
        );
      }
      throw new HubError(
        'Invalid',
        `ModelScope answered HTTP ${status} for ${what} of ${model}: ${detail}`,
        false,
      );
    }
  }

  private async backoff(
    attempt: number,
    retryAfter: string | undefined,
    reason: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const delay = retryDelayMs(attempt, retryAfter, {
      baseDelayMs: this.baseDelayMs,
      maxDelayMs: this.maxDelayMs,
    });
    this.log.warn({ attempt, delayMs: delay }, `${reason}; retrying`);
    await sleep(delay, undefined, { signal });
  }
}

interface RequestContext {
  model: string;
  revision: string;
  what: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function checkModelAndRevision(model: string, revision: string): void {
  const issues = [];
  const modelProblem = modelIdProblem(model);
  if (modelProblem) issues.push({ path: 'model', message: modelProblem });
  const revisionResult = revisionSchema.safeParse(revision);
  if (!revisionResult.success) {
    issues.push({ path: 'revision', message: revisionResult.error.issues[0]?.message ?? 'invalid revision' });
  }
  if (issues.length > 0) throw new InputValidationError('model reference', issues);
}

/** The SDK's download URL (get_file_download_url), file path and revision query-encoded. */
export function modelScopeFileUrl(
  endpoint: string,
  model: string,
  revision: string,
  filePath: string,
): string {
  const query = new URLSearchParams({ Revision: revision, FilePath: filePath });
  return `${endpoint.replace(/\/+$/, '')}/api/v1/models/${model}/repo?${query}`;
}

/**
 * The file listing as HubFiles: directories and git metadata dropped, every path checked
 * (a listing with "../" or absolute paths is refused whole: it could write outside the
 * model's prefix), duplicate paths refused, sha256 kept only when it is one.
 */
export function parseModelScopeListing(model: string, revision: string, body: unknown): HubFile[] {
  const parsed = listingSchema.safeParse(body);
  if (!parsed.success) {
    throw new HubError(
      'Invalid',
      `ModelScope file listing of ${model}@${revision} has an unexpected shape: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`,
      false,
    );
  }
  const { Code, Message, Data } = parsed.data;
  if (Code !== undefined && Code !== 200) {
    const notFound = Code === 404 || /not\s*exist|not\s*found/i.test(Message ?? '');
    throw new HubError(
      notFound ? 'NotFound' : 'Invalid',
      `ModelScope file listing of ${model}@${revision} failed: Code ${Code} ${Message ?? ''}`.trim(),
      false,
    );
  }
  const entries = (Data?.Files ?? []).filter(
    (f) => f.Type !== 'tree' && !IGNORED_FILES.has(f.Name ?? f.Path.split('/').pop() ?? ''),
  );
  if (entries.length === 0) {
    throw new HubError('NotFound', `model ${model}@${revision} lists no files on ModelScope`, false);
  }
  const bad = entries
    .map((f) => ({ path: f.Path, problem: storageKeyProblem(f.Path) }))
    .filter((b): b is { path: string; problem: string } => b.problem !== undefined);
  if (bad.length > 0) {
    throw new HubError(
      'Invalid',
      `ModelScope listing of ${model}@${revision} has unsafe file paths, refusing it: ${bad
        .slice(0, 5)
        .map((b) => `${JSON.stringify(b.path)} ${b.problem}`)
        .join('; ')}`,
      false,
    );
  }
  const seen = new Set<string>();
  const files: HubFile[] = [];
  for (const entry of entries) {
    if (seen.has(entry.Path)) {
      throw new HubError(
        'Invalid',
        `ModelScope listing of ${model}@${revision} lists ${entry.Path} twice`,
        false,
      );
    }
    seen.add(entry.Path);
    if (entry.Size === undefined) {
      throw new HubError(
        'Invalid',
        `ModelScope listing of ${model}@${revision} has no Size for ${entry.Path}`,
        false,
      );
    }
    const sha256 = entry.Sha256?.toLowerCase();
    files.push({
      path: entry.Path,
      size: entry.Size,
      sha256: sha256 && SHA256_HEX.test(sha256) ? sha256 : undefined,
    });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return files;
}

/**
 * Wait before attempt `attempt + 1`: exponential backoff with jitter (half to full of
 * base * 2^(attempt-1)), never shorter than the server's Retry-After, capped at maxDelayMs.
 */
export function retryDelayMs(
  attempt: number,
  retryAfter: string | undefined,
  options: { baseDelayMs: number; maxDelayMs: number },
  random: () => number = Math.random,
  now = Date.now(),
): number {
  const exponential = options.baseDelayMs * 2 ** Math.max(0, attempt - 1);
  const jittered = exponential * (0.5 + random() * 0.5);
  const serverAsked = retryAfterMs(retryAfter, now) ?? 0;
  return Math.round(Math.min(options.maxDelayMs, Math.max(jittered, serverAsked)));
}

/** Drops the first `count` bytes of a stream (for servers that ignore Range). */
function skipBytes(count: number): Transform {
  let remaining = count;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (remaining >= chunk.length) {
        remaining -= chunk.length;
        return done();
      }
      const rest = chunk.subarray(remaining);
      remaining = 0;
      done(null, rest);
    },
  });
}
