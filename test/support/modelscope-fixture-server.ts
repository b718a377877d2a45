import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { type FixtureModel, writeFixtureModel } from '../../src/hub/fixture-model.js';
import { publishModelDirectory } from '../../src/hub/tiny-model.js';

// A loopback HTTP server that answers like ModelScope's model API (file listing with Size
// and Sha256, commit lookup, file download with HTTP Range) for fixture models written by
// writeFixtureModel, with fault knobs so tests can prove retries, resume and refusals
// against real sockets. Every request is recorded for assertions.

export interface FixtureModelSpec {
  model: string;
  revision: string;
  /** Publish this real model directory (e.g. the tiny model) instead of writing a fixture. */
  sourceDir?: string;
  shards?: number;
  shardBytes?: number;
}

export type RequestKind = 'listing' | 'commits' | 'download' | 'other';

export interface RecordedRequest {
  kind: RequestKind;
  method: string;
  pathname: string;
  query: Record<string, string>;
  /** The Range header, when sent. */
  range?: string;
  /** FilePath of a download. */
  filePath?: string;
  /** Whether a valid token came with it (cookie m_session_id or Bearer). */
  authorized: boolean;
  status: number;
  /** Body bytes written (downloads), before any injected connection drop. */
  bytesSent: number;
}

interface Failure {
  remaining: number;
  status: number;
  retryAfterSeconds?: number;
  kind: RequestKind | 'any';
}

export interface ModelScopeFixtureServer {
  endpoint: string;
  /** Root the fixtures were written to (local-mirror layout). */
  dir: string;
  models: FixtureModel[];
  requests: RecordedRequest[];
  /** Most file downloads that were ever in flight at once (reset with resetStats). */
  maxConcurrentDownloads(): number;
  resetStats(): void;
  /** Recorded downloads, optionally of one file. */
  downloads(filePath?: string): RecordedRequest[];
  /** The commit id the server reports for a model revision. */
  commitOf(model: string, revision: string): string;
  faults: {
    /** The next download of `filePath` sends `afterBytes` body bytes, then the connection is destroyed. */
    dropDownloadOnce(filePath: string, afterBytes: number): void;
    /** The next `count` matching requests answer `status` (e.g. 500, 429 with Retry-After). */
    failNext(
      count: number,
      status: number,
      options?: { retryAfterSeconds?: number; kind?: RequestKind | 'any' },
    ): void;
    /** The listing advertises a wrong Sha256 for `filePath` (the bytes stay right). */
    wrongChecksum(filePath: string | undefined): void;
    /** The listing also names a file at `unsafePath` (e.g. "../../etc/evil.py"). */
    traversalPath(unsafePath: string | undefined): void;
    /** Every request must carry this token (cookie m_session_id or Bearer), else 401. */
    requireToken(token: string | undefined): void;
    /** Answer Range requests with the whole file (200), as some proxies do. */
    ignoreRange(on: boolean): void;
    reset(): void;
  };
  stop(): Promise<void>;
}

export async function startModelScopeFixtureServer(options: {
  dir: string;
  models: FixtureModelSpec[];
  token?: string;
}): Promise<ModelScopeFixtureServer> {
  const models: FixtureModel[] = [];
  const contents = new Map<string, Map<string, Buffer>>();
  for (const spec of options.models) {
    const fixture = spec.sourceDir
      ? await publishModelDirectory(options.dir, spec.model, spec.revision, spec.sourceDir)
      : await writeFixtureModel(options.dir, spec.model, spec.revision, {
          shards: spec.shards,
          shardBytes: spec.shardBytes,
        });
    models.push(fixture);
    const files = new Map<string, Buffer>();
    for (const f of fixture.files) files.set(f.path, await readFile(path.join(fixture.root, f.path)));
    contents.set(`${spec.model}@${spec.revision}`, files);
  }

  const commitOf = (model: string, revision: string) =>
    createHash('sha1').update(`${model}@${revision}`).digest('hex');
  // A download may name the branch/tag or the commit the server reported for it.
  const findRevision = (model: string, revision: string): FixtureModel | undefined =>
    models.find(
      (m) => m.model === model && (m.revision === revision || commitOf(m.model, m.revision) === revision),
    );

  let drop: { filePath: string; afterBytes: number } | undefined;
  let failures: Failure[] = [];
  let wrongChecksumPath: string | undefined;
  let unsafePath: string | undefined;
  let token = options.token;
  let ignoreRange = false;
  const requests: RecordedRequest[] = [];
  let activeDownloads = 0;
  let maxActiveDownloads = 0;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fixture');
    const query = Object.fromEntries(url.searchParams.entries());
    const listing = /^\/api\/v1\/models\/([^/]+)\/([^/]+)\/repo\/files$/.exec(url.pathname);
    const commits = /^\/api\/v1\/models\/([^/]+)\/([^/]+)\/commits$/.exec(url.pathname);
    const download = /^\/api\/v1\/models\/([^/]+)\/([^/]+)\/repo$/.exec(url.pathname);
    const kind: RequestKind = listing ? 'listing' : commits ? 'commits' : download ? 'download' : 'other';
    const cookieToken = /(?:^|;\s*)m_session_id=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const authorized = token !== undefined && (cookieToken === token || bearer === token);
    const record: RecordedRequest = {
      kind,
      method: req.method ?? 'GET',
      pathname: url.pathname,
      query,
      range: req.headers.range,
      filePath: download ? query.FilePath : undefined,
      authorized,
      status: 0,
      bytesSent: 0,
    };
    requests.push(record);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };

    if (token !== undefined && !authorized) {
      return json(401, {
        Code: 401,
        Success: false,
        Message: 'login required: invalid or missing access token',
      });
    }
    const failure = failures.find((f) => f.remaining > 0 && (f.kind === 'any' || f.kind === kind));
    if (failure) {
      failure.remaining--;
      const headers: Record<string, string> =
        failure.retryAfterSeconds !== undefined ? { 'retry-after': String(failure.retryAfterSeconds) } : {};
      return json(
        failure.status,
        { Code: failure.status, Success: false, Message: 'injected failure' },
        headers,
      );
    }

    const match = listing ?? commits ?? download;
    if (!match) return json(404, { Code: 404, Success: false, Message: `no route ${url.pathname}` });
    const model = `${match[1]}/${match[2]}`;

    if (commits) {
      const fixture = findRevision(model, query.Ref ?? '');
      if (!fixture) return json(404, { Code: 404, Success: false, Message: `model ${model} not exist` });
      return json(200, {
        Code: 200,
        Success: true,
        Data: {
          Commit: [{ Id: commitOf(fixture.model, fixture.revision), Message: 'fixture commit' }],
          TotalCount: 1,
        },
      });
    }

    const revision = query.Revision ?? 'master';
    const fixture = findRevision(model, revision);
    if (!fixture) {
      return json(404, {
        Code: 404,
        Success: false,
        Message: `model ${model} revision ${revision} not exist`,
      });
    }
    const commit = commitOf(fixture.model, fixture.revision);

    if (listing) {
      const files: Record<string, unknown>[] = fixture.files.map((f) => ({
        Name: path.posix.basename(f.path),
        Path: f.path,
        Type: 'blob',
        Size: f.size,
        Sha256:
          f.path === wrongChecksumPath
            ? createHash('sha256').update('not the content').digest('hex')
            : f.sha256,
        Revision: commit,
        IsLFS: f.path.endsWith('.safetensors') || f.path.endsWith('.tiktoken'),
        Mode: '33188',
      }));
      // What the real API also lists: git metadata and directories, which clients skip.
      files.unshift({
        Name: '.gitattributes',
        Path: '.gitattributes',
        Type: 'blob',
        Size: 1519,
        Sha256: '',
        Revision: commit,
      });
      files.push({ Name: 'docs', Path: 'docs', Type: 'tree', Size: 0, Sha256: '', Revision: commit });
      if (unsafePath) {
        files.push({
          Name: path.posix.basename(unsafePath),
          Path: unsafePath,
          Type: 'blob',
          Size: 12,
          Sha256: '',
          Revision: commit,
        });
      }
      return json(200, { Code: 200, Success: true, Message: 'success', Data: { Files: files } });
    }

    // Download.
    activeDownloads++;
    maxActiveDownloads = Math.max(maxActiveDownloads, activeDownloads);
    res.once('close', () => {
      activeDownloads--;
    });
    const filePath = query.FilePath ?? '';
    const bytes = contents.get(`${fixture.model}@${fixture.revision}`)?.get(filePath);
    if (!bytes) return json(404, { Code: 404, Success: false, Message: `file ${filePath} not exist` });
    let start = 0;
    let end = bytes.length - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && !ignoreRange) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
      if (start >= bytes.length) {
        record.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
        return res.end();
      }
      status = 206;
    }
    const body = bytes.subarray(start, end + 1);
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'accept-ranges': 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${bytes.length}`;
    record.status = status;
    res.writeHead(status, headers);
    if (drop && drop.filePath === filePath) {
      const cut = Math.min(drop.afterBytes, body.length - 1);
      drop = undefined;
      record.bytesSent = cut;
      // Send part of the body, then kill the socket: the client sees a premature close.
      res.write(body.subarray(0, cut), () => {
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    record.bytesSent = body.length;
    res.end(body);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    dir: options.dir,
    models,
    requests,
    maxConcurrentDownloads: () => maxActiveDownloads,
    resetStats() {
      requests.length = 0;
      maxActiveDownloads = 0;
    },
    downloads: (filePath) =>
      requests.filter((r) => r.kind === 'download' && (!filePath || r.filePath === filePath)),
    commitOf,
    faults: {
      dropDownloadOnce(filePath, afterBytes) {
        drop = { filePath, afterBytes };
      },
      failNext(count, status, opts = {}) {
        failures.push({
          remaining: count,
          status,
          retryAfterSeconds: opts.retryAfterSeconds,
          kind: opts.kind ?? 'any',
        });
      },
      wrongChecksum(filePath) {
        wrongChecksumPath = filePath;
      },
      traversalPath(p) {
        unsafePath = p;
      },
      requireToken(t) {
        token = t;
      },
      ignoreRange(on) {
        ignoreRange = on;
      },
      reset() {
        drop = undefined;
        failures = [];
        wrongChecksumPath = undefined;
        unsafePath = undefined;
        ignoreRange = false;
        token = options.token;
      },
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
