import type { Client } from '@temporalio/client';
import { TASK_QUEUES } from '../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../workflows/index.js';
import type { QwenopsConfig } from '../config/config.js';
import type { ReindexReport, ReindexRequestInput } from '../domain/knowledge.js';
import { composeKnowledge, createChatClient } from '../knowledge/compose.js';
import { askKnowledge } from '../knowledge/retrieval.js';
import { SAMPLE_KNOWLEDGE_BASE_DIR, SAMPLE_QUESTION } from '../knowledge/sample.js';

// The knowledge part of the demo: re-index the bundled Chinese sample knowledge base with
// the reindexKnowledgeBase workflow (twice: the second run is incremental and must embed
// nothing), then answer one question from it through the promoted service.

async function reindex(
  client: Client,
  request: ReindexRequestInput,
  workflowId: string,
): Promise<ReindexReport> {
  return client.workflow.execute(reindexKnowledgeBase, {
    taskQueue: TASK_QUEUES.default,
    workflowId,
    args: [{ request }],
  });
}

function describeReport(label: string, report: ReindexReport): string {
  const c = report.counters;
  return `${label}: ${report.mode} mode, ${c.documents} documents, chunks +${c.chunksAdded} =${c.chunksKept} -${c.chunksRemoved}, ${c.embeddingCalls} embedding calls, ${report.rowsAfter} rows${report.verification ? `, recall@10 ${report.verification.recallAt10}` : ''}`;
}

export async function demoKnowledgeBase(options: {
  client: Client;
  config: QwenopsConfig;
  databaseUrl: string;
  /** OpenAI base URL (…/v1) of the promoted service, through its traffic split. */
  chatBaseUrl?: string;
  chatModel: string;
  /** What answers, in words (simulation or a real engine). */
  chatEngine: string;
  log: (line: string) => void;
}): Promise<string[]> {
  const request: ReindexRequestInput = {
    source: { kind: 'directory', path: SAMPLE_KNOWLEDGE_BASE_DIR },
    requestedBy: 'demo',
  };
  options.log(`re-indexing ${SAMPLE_KNOWLEDGE_BASE_DIR} with the reindexKnowledgeBase workflow`);
  const first = await reindex(options.client, request, 'reindex-qwen_knowledge');
  options.log(describeReport('first run', first));
  const second = await reindex(options.client, { ...request, mode: 'incremental' }, 'reindex-qwen_knowledge');
  options.log(describeReport('second run (unchanged corpus)', second));

  const lines = [
    '',
    'knowledge base:',
    `  ${describeReport('first run', first)}`,
    `  ${describeReport('second run', second)}`,
  ];
  const knowledge = composeKnowledge(options.config, { databaseUrl: options.databaseUrl, poolSize: 2 });
  try {
    const store = knowledge.store(first.table);
    if (!options.chatBaseUrl) throw new Error('the promoted service has no URL to ask');
    const chat = createChatClient({ chatUrl: options.chatBaseUrl });
    const answer = await askKnowledge({ store, embedder: knowledge.embedder, chat }, SAMPLE_QUESTION, {
      model: options.chatModel,
      k: 3,
    });
    lines.push(`  question: ${SAMPLE_QUESTION}`);
    for (const hit of answer.references) {
      lines.push(
        `    [${hit.score.toFixed(3)}] ${hit.source}: ${hit.content.replace(/\s+/g, ' ').slice(0, 70)}…`,
      );
    }
    lines.push(
      `  answer from ${options.chatModel} (${options.chatEngine}):`,
      `    ${answer.answer.replace(/\s+/g, ' ').slice(0, 120)}`,
    );
  } finally {
    await knowledge.close();
  }
  if (second.counters.embeddingCalls !== 0)
    throw new Error('the incremental re-run of an unchanged corpus embedded something');
  return lines;
}
