import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type ReindexReport, reindexRequestSchema } from '../domain/knowledge.js';
import type { Logger } from '../observability/logger.js';
import { repoRoot } from '../runtime/entrypoints.js';
import { createChatClient, openKnowledge } from './compose.js';
import { LexicalEmbedder } from './embedders/lexical.js';
import type { Embedder } from './embedders/port.js';
import { askKnowledge, type RagAnswer, searchKnowledge } from './retrieval.js';
import type { SearchHit } from './store/port.js';

// The bundled Chinese sample knowledge base (a fictional company's policies) for
// `make demo`: re-index it, then answer one question from it.

export const SAMPLE_KNOWLEDGE_BASE_DIR = path.join(repoRoot, 'samples', 'knowledge-base', 'docs');
export const SAMPLE_QUESTION = '入职满三年的员工每年有几天带薪年假？';

export interface SampleRunOptions {
  databaseUrl: string;
  logger: Logger;
  /** Defaults to the local lexical embedder (labelled as a stand-in). */
  embedder?: Embedder;
  table?: string;
  question?: string;
  /** OpenAI-compatible chat endpoint (…/v1) and model for the answer; without it, only retrieval. */
  chat?: { baseUrl: string; model: string; apiKey?: string };
}

export interface SampleRunResult {
  report: ReindexReport;
  question: string;
  hits: SearchHit[];
  answer?: RagAnswer;
}

export async function reindexSampleKnowledgeBase(options: SampleRunOptions): Promise<SampleRunResult> {
  const knowledge = openKnowledge({
    databaseUrl: options.databaseUrl,
    embedder: options.embedder ?? new LexicalEmbedder(),
    logger: options.logger,
  });
  try {
    const { embedder } = knowledge;
    const request = reindexRequestSchema.parse({
      table: options.table ?? 'qwen_knowledge',
      source: { kind: 'directory', path: SAMPLE_KNOWLEDGE_BASE_DIR },
      requestedBy: 'demo',
      verify: { probes: 10 },
    });
    const store = knowledge.store(request.table);
    const report = await knowledge.indexer(request).runReindex(request, `demo-${randomUUID()}`);
    if (report.outcome !== 'succeeded')
      throw new Error(`re-indexing the sample knowledge base failed: ${report.reason}`);
    const question = options.question ?? SAMPLE_QUESTION;
    const hits = await searchKnowledge({ store, embedder }, question, { k: 3 });
    let answer: RagAnswer | undefined;
    if (options.chat) {
      const chat = createChatClient({ chatUrl: options.chat.baseUrl, apiKey: options.chat.apiKey });
      answer = await askKnowledge({ store, embedder, chat }, question, { model: options.chat.model, k: 3 });
    }
    return { report, question, hits, answer };
  } finally {
    await knowledge.close();
  }
}
