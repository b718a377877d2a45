import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyRagAudit } from '../../../src/audit/rag-audit.js';
import { SAMPLE_KNOWLEDGE_BASE_DIR } from '../../../src/knowledge/sample.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { REFUSAL_MESSAGE } from '../../../src/safety/guard.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { startProcess, stopAll } from '../../support/processes.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// `qwenops kb ask` with the safety filter and the RAG audit log, as the real CLI process,
// against the embedded database and the serving simulator; then `qwenops audit verify`.

let db: RunningPglite;
let simulator: TestSimulator;
let storeDir: string;

async function cli(args: string[]) {
  const child = startProcess('qwenops', [...nodeEntrypoint('src/cli/main'), ...args], {
    env: {
      QWENOPS_DATABASE_URL: db.url,
      QWENOPS_LOG_LEVEL: 'warn',
      QWENOPS_STATE_DIR: db.dataDir,
      QWENOPS_STORE: 'fs',
      QWENOPS_STORE_DIR: storeDir,
    },
  });
  let stdout = '';
  let stderr = '';
  child.child.stdout?.on('data', (c) => (stdout += c));
  child.child.stderr?.on('data', (c) => (stderr += c));
  const code = await child.exited;
  // biome-ignore lint/suspicious/noExplicitAny: the CLI's JSON output, asserted field by field
  return { code, stdout, stderr, json: (): any => JSON.parse(stdout) };
}

const ask = (question: string, ...extra: string[]) =>
  cli([
    '--json',
    'kb',
    'ask',
    question,
    '--chat-url',
    simulator.baseUrl,
    '--model',
    'qwen-7b-chat',
    '--user',
    'alice',
    ...extra,
  ]);

beforeAll(async () => {
  [db, simulator] = await Promise.all([startPglite(), startSimulator()]);
  storeDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-kb-safety-store-'));
  const reindex = await cli(['--json', 'kb', 'reindex', '--local', '--dir', SAMPLE_KNOWLEDGE_BASE_DIR]);
  expect(reindex.code, reindex.stderr).toBe(0);
});

afterAll(async () => {
  await simulator?.close();
  await stopAll();
});

describe('qwenops kb ask with the safety filter', () => {
  it('refuses a sensitive question, filters a sensitive answer, audits every request, and verifies the chain', async () => {
    const clean = await ask('入职满三年的员工每年有几天带薪年假？');
    expect(clean.code, clean.stderr).toBe(0);
    const answer = clean.json();
    expect(answer.filtered).toBeUndefined();
    expect(answer.answer).not.toBe(REFUSAL_MESSAGE);
    // The audit line went to stderr (stdout holds the --json answer).
    expect(clean.stderr).toContain('"rag_audit"');

    const refused = await ask('哪里可以 賭\u200b博？');
    expect(refused.code, refused.stderr).toBe(0);
    expect(refused.json()).toMatchObject({
      answer: REFUSAL_MESSAGE,
      filtered: { stage: 'input', category: 'gambling' },
    });

    // A lexicon holding a word of the (seeded, so repeatable) simulated answer blocks it on the way out.
    const word = [...(answer.answer as string)]
      .filter((c) => /\p{Script=Han}/u.test(c))
      .slice(0, 2)
      .join('');
    expect(word.length).toBe(2);
    const lexicon = path.join(storeDir, '..', `lexicon-${process.pid}.json`);
    await writeFile(
      lexicon,
      JSON.stringify({ version: 't', entries: [{ word, category: 'test', match: 'substring' }] }),
    );
    const filtered = await ask('入职满三年的员工每年有几天带薪年假？', '--lexicon', lexicon);
    expect(filtered.code, filtered.stderr).toBe(0);
    expect(filtered.json()).toMatchObject({
      answer: REFUSAL_MESSAGE,
      filtered: { stage: 'output', category: 'test' },
    });

    await writeFile(lexicon, JSON.stringify({ version: 't', entries: [{ word: '', category: 'test' }] }));
    const bad = await ask('你好', '--lexicon', lexicon);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('entry 0: word is empty');

    const report = await verifyRagAudit(new FsArtifactStore(storeDir));
    expect(report).toMatchObject({ records: 3, firstSeq: 1, lastSeq: 3 });
    const verify = await cli(['--json', 'audit', 'verify']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.json()).toMatchObject({ ok: true, rag: { records: 3 } });

    // Deleting the middle record is reported with its key, and a non-zero exit code.
    const keys: string[] = [];
    for await (const object of new FsArtifactStore(storeDir).list('rag-audit/')) keys.push(object.key);
    keys.sort();
    await new FsArtifactStore(storeDir).delete(keys[1] as string);
    const broken = await cli(['audit', 'verify', '--log', 'rag']);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/rag log: 2 records .*BROKEN/);
    expect(broken.stdout).toContain('seq: expected 2, found 3');
    const badFlag = await cli(['audit', 'verify', '--from', '2026-13-01']);
    expect(badFlag.code).toBe(64);
    expect(badFlag.stderr).toContain('--from: "2026-13-01" is not a date YYYY-MM-DD');
  });
});
