import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createKnowledgeActivities } from '../../../activities/knowledge.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { LexicalEmbedder } from '../../../src/knowledge/embedders/lexical.js';
import { DirectorySource } from '../../../src/knowledge/sources/directory.js';
import { createLogger } from '../../../src/observability/logger.js';
import { FAILURE_TYPES } from '../../../workflows/definitions.js';

// A re-index whose directory source does not exist is bad input: refused at once, not
// retried for minutes (issue 9), and refused before the knowledge base is touched.

const missing = path.join(os.tmpdir(), `qwenops-no-such-dir-${process.pid}`, 'kb');

describe('a missing knowledge directory', () => {
  it('is an InputValidationError naming source.path (service level)', async () => {
    const listing = new DirectorySource(missing).list()[Symbol.asyncIterator]();
    const error = await listing.next().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(InputValidationError);
    expect((error as InputValidationError).issues).toEqual([
      {
        path: 'source.path',
        message: `directory ${missing} does not exist or is not a directory (on this worker)`,
      },
    ]);
  });

  it('fails the begin activity non-retryably, before any database access', async () => {
    const untouchable = new Proxy({} as pg.Pool, {
      get: (_target, property) => {
        if (property === 'then') return undefined;
        throw new Error(`the database was used (${String(property)})`);
      },
    });
    const activities = createKnowledgeActivities({
      pool: () => untouchable,
      embedder: new LexicalEmbedder(),
      logger: createLogger('test', 'silent'),
      // The worker's confinement allows the temp dir; the directory under it does not exist.
      directoryRoots: [os.tmpdir()],
    });
    const env = new MockActivityEnvironment();
    const failure = await env
      .run(activities.beginKnowledgeReindex, {
        request: { source: { kind: 'directory' as const, path: missing }, requestedBy: 'test' },
        runId: 'run-1',
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    expect((failure as ApplicationFailure).type).toBe(FAILURE_TYPES.invalidInput);
    // Refused by the confinement check (it resolves the path) or the listing, naming the field.
    expect((failure as ApplicationFailure).message).toMatch(/source\.path: /);
    expect((failure as ApplicationFailure).message).toContain(missing);
  });
});
