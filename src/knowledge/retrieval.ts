import type { ChatMessage, OpenAiClient } from '../llm/client.js';
import type { Embedder } from './embedders/port.js';
import { StoreError } from './store/errors.js';
import type { KnowledgeSearchStore, SearchHit } from './store/port.js';

// Retrieval and the RAG prompt. The prompt keeps the production plan's rules: answer only
// from the references, say 我不知道 when they do not hold the answer, temperature 0.3.

export const RAG_TEMPERATURE = 0.3;
export const UNKNOWN_ANSWER = '我不知道';

export interface RetrievalDeps {
  store: KnowledgeSearchStore;
  embedder: Embedder;
}

/** Top-k chunks for a question; refuses when the index was built by another embedding model. */
export async function searchKnowledge(
  deps: RetrievalDeps,
  question: string,
  options: { k?: number; efSearch?: number } = {},
): Promise<SearchHit[]> {
  const text = question.trim();
  if (!text) throw new StoreError('the question is empty');
  const meta = await deps.store.meta('live');
  if (meta && meta.embeddingModel !== deps.embedder.model) {
    throw new StoreError(
      `the knowledge base ${deps.store.table} was embedded with ${meta.embeddingModel}, but the query embedder is ${deps.embedder.model}: configure the same model (QWENOPS_EMBEDDINGS_URL / QWENOPS_EMBEDDINGS_MODEL) or re-index`,
    );
  }
  const [vector] = await deps.embedder.embed([text]);
  return deps.store.search(vector as Float32Array, options.k ?? 5, { efSearch: options.efSearch });
}

/** The chat messages of a RAG answer: numbered references with their sources, then the question. */
export function buildRagMessages(question: string, hits: SearchHit[]): ChatMessage[] {
  const references =
    hits.length === 0
      ? '（没有检索到参考资料）'
      : hits.map((hit, i) => `[${i + 1}] 来源：${hit.source}\n${hit.content}`).join('\n\n');
  const system = [
    '你是企业内部知识库的问答助手。',
    '只依据用户消息中编号的参考资料回答，不使用参考资料以外的知识，也不要编造。',
    `参考资料中找不到答案时，只回答“${UNKNOWN_ANSWER}”。`,
    '引用时在句末标注参考资料编号，例如 [1]。',
  ].join('\n');
  return [
    { role: 'system', content: system },
    { role: 'user', content: `参考资料：\n${references}\n\n问题：${question.trim()}` },
  ];
}

export interface RagAnswer {
  answer: string;
  references: SearchHit[];
  messages: ChatMessage[];
  model: string;
  /** Total tokens of the completion, when the server reported usage. */
  tokens?: number;
}

export async function askKnowledge(
  deps: RetrievalDeps & { chat: OpenAiClient },
  question: string,
  options: { model: string; k?: number; maxTokens?: number; efSearch?: number },
): Promise<RagAnswer> {
  const references = await searchKnowledge(deps, question, { k: options.k ?? 4, efSearch: options.efSearch });
  const messages = buildRagMessages(question, references);
  const completion = await deps.chat.chat({
    model: options.model,
    messages,
    temperature: RAG_TEMPERATURE,
    max_tokens: options.maxTokens ?? 512,
  });
  const answer = completion.choices[0]?.message.content?.trim() ?? '';
  return { answer, references, messages, model: completion.model, tokens: completion.usage?.total_tokens };
}
