import { describe, expect, it } from 'vitest';
import { retryAfterMs as parseRetryAfter } from '../../../src/domain/http.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import {
  checkModelAndRevision,
  modelScopeFileUrl,
  parseModelScopeListing,
  retryDelayMs,
} from '../../../src/hub/modelscope.js';
import { HubError } from '../../../src/hub/port.js';

const SHA = 'a'.repeat(64);

function listing(files: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  return { Code: 200, Success: true, Data: { Files: files }, ...extra };
}

function refusal(fn: () => unknown): HubError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HubError);
    return err as HubError;
  }
  throw new Error('expected a HubError');
}

describe('parseModelScopeListing', () => {
  it('keeps blobs with size and sha256, drops directories and git metadata, sorts by path', () => {
    const files = parseModelScopeListing(
      'qwen/Qwen-7B-Chat',
      'master',
      listing([
        {
          Name: 'modeling_qwen.py',
          Path: 'modeling_qwen.py',
          Type: 'blob',
          Size: 10,
          Sha256: SHA.toUpperCase(),
        },
        { Name: '.gitattributes', Path: '.gitattributes', Type: 'blob', Size: 5, Sha256: '' },
        { Name: 'assets', Path: 'assets', Type: 'tree', Size: 0 },
        { Name: 'config.json', Path: 'config.json', Type: 'blob', Size: 3, Sha256: '' },
        { Name: 'logo.png', Path: 'assets/logo.png', Type: 'blob', Size: 7, Sha256: null },
      ]),
    );
    expect(files).toEqual([
      { path: 'assets/logo.png', size: 7, sha256: undefined },
      { path: 'config.json', size: 3, sha256: undefined },
      { path: 'modeling_qwen.py', size: 10, sha256: SHA },
    ]);
  });

  it.each([
    ['../../etc/passwd', 'path traversal'],
    ['weights/../../x.bin', 'path traversal'],
    ['/abs/model.bin', 'relative'],
    ['a//b.bin', 'empty segments'],
    ['dir\\evil.py', 'separator'],
  ])('refuses the whole listing when a path is unsafe: %s', (unsafe, rule) => {
    const err = refusal(() =>
      parseModelScopeListing(
        'qwen/Qwen-7B-Chat',
        'master',
        listing([
          { Name: 'config.json', Path: 'config.json', Type: 'blob', Size: 3 },
          { Name: 'x', Path: unsafe, Type: 'blob', Size: 1 },
        ]),
      ),
    );
    expect(err.code).toBe('Invalid');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(JSON.stringify(unsafe));
    expect(err.message).toContain(rule);
  });

  it('refuses duplicate paths and entries without a size', () => {
    expect(
      refusal(() =>
        parseModelScopeListing(
          'o/m',
          'v1',
          listing([
            { Path: 'a.bin', Type: 'blob', Size: 1 },
            { Path: 'a.bin', Type: 'blob', Size: 1 },
          ]),
        ),
      ).message,
    ).toContain('twice');
    expect(
      refusal(() => parseModelScopeListing('o/m', 'v1', listing([{ Path: 'a.bin', Type: 'blob' }]))).message,
    ).toContain('no Size');
  });

  it('maps an API-level error code and an empty listing to NotFound, a strange shape to Invalid', () => {
    const notExist = refusal(() =>
      parseModelScopeListing('o/m', 'master', { Code: 10010205001, Message: 'model not exist', Data: null }),
    );
    expect(notExist.code).toBe('NotFound');
    expect(notExist.message).toContain('o/m');
    expect(refusal(() => parseModelScopeListing('o/m', 'master', listing([]))).code).toBe('NotFound');
    expect(refusal(() => parseModelScopeListing('o/m', 'master', { Data: { Files: 'nope' } })).code).toBe(
      'Invalid',
    );
  });
});

describe('retry timing', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('backs off exponentially with jitter, never below Retry-After, never above the cap', () => {
    const opts = { baseDelayMs: 100, maxDelayMs: 5000 };
    expect(retryDelayMs(1, undefined, opts, () => 1)).toBe(100);
    expect(retryDelayMs(3, undefined, opts, () => 1)).toBe(400);
    expect(retryDelayMs(3, undefined, opts, () => 0)).toBe(200);
    expect(retryDelayMs(1, '2', opts, () => 0)).toBe(2000);
    expect(retryDelayMs(1, '60', opts, () => 0)).toBe(5000);
    expect(retryDelayMs(20, undefined, opts, () => 1)).toBe(5000);
  });
});

describe('request helpers', () => {
  it('builds the SDK download URL with query-encoded path and revision', () => {
    expect(
      modelScopeFileUrl('https://www.modelscope.cn/', 'qwen/Qwen-7B-Chat', 'v1.1.4', 'dir/a b+c.json'),
    ).toBe(
      'https://www.modelscope.cn/api/v1/models/qwen/Qwen-7B-Chat/repo?Revision=v1.1.4&FilePath=dir%2Fa+b%2Bc.json',
    );
  });

  it('names each bad field of a model reference', () => {
    try {
      checkModelAndRevision('../etc', 'main/../x');
      throw new Error('expected a refusal');
    } catch (err) {
      expect(err).toBeInstanceOf(InputValidationError);
      expect((err as InputValidationError).issues.map((i) => i.path)).toEqual(['model', 'revision']);
    }
    expect(() => checkModelAndRevision('qwen/Qwen-7B-Chat', 'master')).not.toThrow();
  });
});
