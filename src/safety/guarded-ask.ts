import type { RagAuditLog } from '../audit/rag-audit.js';
import { askKnowledge, type RagAnswer } from '../knowledge/retrieval.js';
import { filterChecks, filterInterceptions } from '../observability/metrics.js';
import { type Guard, type GuardResult, REFUSAL_MESSAGE } from './guard.js';

// `kb ask` with the safety filter on both sides and the RAG audit record: a blocked
// question is refused without retrieval or a model call; a blocked answer is replaced by
// the refusal. Every answered request (refused ones included) leaves one audit record.

export interface FilteredAnswer extends RagAnswer {
  /** Set when the filter intervened. */
  filtered?: { stage: 'input' | 'output'; category: string; guard: string };
}

export interface GuardedAskDeps {
  guard: Guard;
  audit?: RagAuditLog;
  userId: string;
}

/** One guard check, counted in the filter metrics (qwenops_filter_checks_total / _interceptions_total). */
export async function checkStage(
  guard: Guard,
  stage: 'input' | 'output',
  text: string,
): Promise<GuardResult> {
  filterChecks.inc({ stage });
  const result = await guard.check(text);
  if (result.blocked) filterInterceptions.inc({ stage, category: result.category ?? 'unknown' });
  return result;
}

export async function guardedAsk(
  deps: Parameters<typeof askKnowledge>[0] & GuardedAskDeps,
  question: string,
  options: Parameters<typeof askKnowledge>[2],
): Promise<FilteredAnswer> {
  let result: FilteredAnswer;
  const input = await checkStage(deps.guard, 'input', question);
  if (input.blocked) {
    result = {
      answer: REFUSAL_MESSAGE,
      references: [],
      messages: [],
      model: options.model,
      tokens: 0,
      filtered: { stage: 'input', category: input.category ?? 'unknown', guard: deps.guard.name },
    };
  } else {
    const answered = await askKnowledge(deps, question, options);
    const output = await checkStage(deps.guard, 'output', answered.answer);
    result = output.blocked
      ? {
          ...answered,
          answer: REFUSAL_MESSAGE,
          filtered: { stage: 'output', category: output.category ?? 'unknown', guard: deps.guard.name },
        }
      : answered;
  }
  await deps.audit?.append([
    {
      model: result.model,
      prompt: question,
      user_id: deps.userId,
      is_filtered: result.filtered !== undefined,
      tokens: result.tokens ?? 0,
    },
  ]);
  return result;
}
