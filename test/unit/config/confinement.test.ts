import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { ConfinementError, confinePath, confineUrl, urlAllowed } from '../../../src/config/confinement.js';
import { reindexRequestSchema } from '../../../src/domain/knowledge.js';
import { parseLoadTestRequest } from '../../../src/domain/load-test.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { DirectorySource } from '../../../src/knowledge/sources/directory.js';
import { parsePromptJsonl, readPromptJsonl } from '../../../src/loadtest/prompts/index.js';
import { runLoadTest } from '../../../src/loadtest/runner.js';

// What workflow input may make a worker read or reach: prompt files and knowledge
// directories under configured roots (symlinks and ".." resolved), load-test targets on an
// allowlist; refused before anything is read or sent, never quoting file contents.

let root: string;
let outside: string;

beforeAll(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'qwenops-confine-root-')));
  outside = await realpath(await mkdtemp(path.join(os.tmpdir(), 'qwenops-confine-outside-')));
  await writeFile(path.join(root, 'ok.jsonl'), '{"prompt":"你好"}\n');
  await writeFile(path.join(outside, 'secret.txt'), 'TOP-SECRET-LINE\n');
  await symlink(path.join(outside, 'secret.txt'), path.join(root, 'link.jsonl'));
  await symlink(outside, path.join(root, 'linked-dir'));
  await mkdir(path.join(root, 'kb'));
  await writeFile(path.join(root, 'kb', 'a.md'), '# a\n');
  await symlink(path.join(outside, 'secret.txt'), path.join(root, 'kb', 'escape.md'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const prompt = { subject: 'load test request', field: 'prompts.path', rule: 'promptRoots' } as const;

describe('confinePath', () => {
  it('accepts a file under a root and returns its real path', async () => {
    await expect(confinePath(path.join(root, 'ok.jsonl'), [root], prompt)).resolves.toBe(
      path.join(root, 'ok.jsonl'),
    );
  });

  it('refuses /etc/shadow and /etc/passwd, naming the field and the rule', async () => {
    for (const file of ['/etc/shadow', '/etc/passwd']) {
      const err = await confinePath(file, [root], prompt).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfinementError);
      expect(err).toBeInstanceOf(InputValidationError);
      expect((err as ConfinementError).issues[0]?.path).toBe('prompts.path');
      expect((err as Error).message).toMatch(
        /outside the allowed prompt file roots \(confinement\.promptRoots, QWENOPS_PROMPT_ROOTS\)/,
      );
    }
  });

  it('refuses a symlink inside a root that points outside (file and directory)', async () => {
    await expect(confinePath(path.join(root, 'link.jsonl'), [root], prompt)).rejects.toThrow(
      /resolves \(through a symlink\) outside/,
    );
    await expect(confinePath(path.join(root, 'linked-dir', 'secret.txt'), [root], prompt)).rejects.toThrow(
      /resolves \(through a symlink\) outside/,
    );
  });

  it('refuses "../" traversal, NUL bytes, and everything when no root is configured', async () => {
    await expect(
      confinePath(`${root}/../${path.basename(outside)}/secret.txt`, [root], prompt),
    ).rejects.toThrow(/prompts\.path: must not contain "\.\." segments/);
    await expect(confinePath(`${root}/ok.jsonl\u0000`, [root], prompt)).rejects.toThrow(/NUL bytes/);
    await expect(confinePath(path.join(root, 'ok.jsonl'), [], prompt)).rejects.toThrow(
      /no prompt file roots \(confinement\.promptRoots, QWENOPS_PROMPT_ROOTS\) are configured/,
    );
  });

  it('does not say whether a path outside the roots exists', async () => {
    const a = await confinePath('/etc/passwd', [root], prompt).catch((e: Error) => e.message);
    const b = await confinePath('/etc/no-such-file-here', [root], prompt).catch((e: Error) => e.message);
    expect(a.replace('/etc/passwd', 'X')).toBe(b.replace('/etc/no-such-file-here', 'X'));
  });
});

describe('prompt files', () => {
  it('reads a confined prompt file and refuses one outside before reading it', async () => {
    await expect(readPromptJsonl(path.join(root, 'ok.jsonl'), { roots: [root] })).resolves.toHaveLength(1);
    const err = await readPromptJsonl(path.join(outside, 'secret.txt'), { roots: [root] }).catch(
      (e: Error) => e,
    );
    expect((err as Error).message).toMatch(/prompts\.path: .* is outside/);
    expect((err as Error).message).not.toContain('TOP-SECRET');
  });

  it('never quotes a line of the file in a parse error', () => {
    const err = (() => {
      try {
        parsePromptJsonl('root:x:0:0:root:/root:/bin/bash\n', 'f');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(/f:1: not JSON/);
    expect(err?.message).not.toContain('root:x');
  });

  it('the load generator refuses a disallowed target or prompt file before sending anything', async () => {
    const confinement = { promptRoots: [root], loadTestTargets: ['127.0.0.1:1'] };
    await expect(runLoadTest({ url: 'http://10.1.2.3:8000/v1' }, { confinement })).rejects.toThrow(
      /url: "http:\/\/10\.1\.2\.3:8000\/v1" is not an allowed load-test target/,
    );
    await expect(
      runLoadTest(
        { url: 'http://127.0.0.1:1/v1', prompts: { kind: 'jsonl', path: '/etc/passwd' } },
        { confinement },
      ),
    ).rejects.toThrow(/prompts\.path: "\/etc\/passwd" is outside/);
  });
});

describe('edge schemas', () => {
  it('refuse ".." and NUL in prompt and directory paths, naming the field', () => {
    expect(() =>
      parseLoadTestRequest({ url: 'http://h:1/v1', prompts: { kind: 'jsonl', path: 'a/../../etc/passwd' } }),
    ).toThrow(/prompts\.path: must not contain "\.\." segments/);
    const dir = reindexRequestSchema.safeParse({ source: { kind: 'directory', path: '/srv/kb\u0000x' } });
    expect(dir.success).toBe(false);
    expect(dir.error?.issues[0]?.path).toEqual(['source', 'path']);
  });
});

describe('knowledge directory sources', () => {
  it('lists and reads a directory under a root; refuses one outside before listing', async () => {
    const source = new DirectorySource(path.join(root, 'kb'), { allowedRoots: [root] });
    const keys: string[] = [];
    for await (const entry of source.list()) keys.push(entry.key);
    expect(keys).toEqual(['a.md']); // the escaping symlink is not a regular file: left out
    expect((await source.read('a.md')).toString()).toBe('# a\n');
    await expect(source.read('escape.md')).rejects.toThrow(/resolves outside/);
    expect(await source.exists('escape.md')).toBe(false);

    const refused = new DirectorySource('/etc', { allowedRoots: [root] });
    const err = await (async () => {
      for await (const _ of refused.list()) return undefined;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfinementError);
    expect((err as Error).message).toMatch(
      /source\.path: "\/etc" is outside the allowed knowledge directory roots \(confinement\.knowledgeRoots, QWENOPS_KNOWLEDGE_ROOTS\)/,
    );
    const viaLink = new DirectorySource(path.join(root, 'linked-dir'), { allowedRoots: [root] });
    await expect(viaLink.list()[Symbol.asyncIterator]().next()).rejects.toThrow(/through a symlink/);
  });
});

describe('load-test target allowlist', () => {
  const list = [
    '127.0.0.1',
    'localhost:8000',
    '*.svc.cluster.local',
    '[::1]',
    'https://llm.example.com/openai/v1',
  ];
  it.each([
    ['http://127.0.0.1:4101/v1', true],
    ['http://localhost:8000/v1', true],
    ['http://localhost:9000/v1', false],
    ['http://qwen.llm-prod.svc.cluster.local/v1', true],
    ['http://svc.cluster.local.evil.com/v1', false],
    ['http://[::1]:8000/v1', true],
    ['https://llm.example.com/openai/v1/chat/completions', true],
    ['https://llm.example.com/openai/v10', false],
    ['http://llm.example.com/openai/v1', false],
    ['http://127.0.0.1@evil.example/v1', false],
    ['http://user:pw@127.0.0.1/v1', false],
    ['http://2130706433/v1', true], // the URL parser normalises it to 127.0.0.1
    ['file:///etc/passwd', false],
  ])('%s -> %s', (url, allowed) => {
    expect(urlAllowed(url, list)).toBe(allowed);
  });

  it('refuses with the field and the rule', () => {
    expect(() => confineUrl('http://10.0.0.1/v1', list, 'load test request', 'url')).toThrow(
      /invalid load test request: url: "http:\/\/10\.0\.0\.1\/v1" is not an allowed load-test target \(confinement\.loadTestTargets, QWENOPS_LOADTEST_TARGETS/,
    );
  });
});

describe('config defaults', () => {
  it('embedded (sandbox): bundled data dirs + state dir, loopback + the sandbox host; kubernetes: nothing', () => {
    const embedded = loadConfig({ env: { QWENOPS_STATE_DIR: '/tmp/qwenops-state' } });
    expect(embedded.confinement.promptRoots).toContain('/tmp/qwenops-state');
    expect(embedded.confinement.knowledgeRoots.some((r) => r.endsWith(`${path.sep}samples`))).toBe(true);
    expect(embedded.confinement.loadTestTargets).toEqual(['127.0.0.1', 'localhost', '[::1]']);
    expect(embedded.cluster.sandboxTokenFile).toBe('/tmp/qwenops-state/sandbox/api-token');
    const production = loadConfig({ env: { QWENOPS_CLUSTER: 'kubernetes' } });
    expect(production.confinement).toEqual({ promptRoots: [], knowledgeRoots: [], loadTestTargets: [] });
    const explicit = loadConfig({
      env: {
        QWENOPS_CLUSTER: 'kubernetes',
        QWENOPS_PROMPT_ROOTS: '/data/prompts:/data/more',
        QWENOPS_KNOWLEDGE_ROOTS: '/data/kb',
        QWENOPS_LOADTEST_TARGETS:
          'http://qwen.llm-prod.svc.cluster.local/v1, *.llm-staging.svc.cluster.local',
      },
    });
    expect(explicit.confinement).toEqual({
      promptRoots: ['/data/prompts', '/data/more'],
      knowledgeRoots: ['/data/kb'],
      loadTestTargets: ['http://qwen.llm-prod.svc.cluster.local/v1', '*.llm-staging.svc.cluster.local'],
    });
  });
});
