import {
  emptySetTally,
  type RefusedBy,
  type SafetySetTally,
  type SafetyTally,
} from '../domain/safety-gate.js';
import type { Guard } from './guard.js';
import { checkStage } from './guarded-ask.js';
import type { PromptSet } from './prompt-set.js';
import { looksLikeRefusal } from './refusal.js';

// Runs a prompt set through guard + candidate, the way a user's request travels: the input
// filter first (a blocked prompt never reaches the model), then the model, then the output
// filter, and finally whether the model refused by itself. Each prompt's outcome is kept, so
// a run interrupted half-way resumes after the last outcome it recorded.

export interface SafetyOutcome {
  id: string;
  set: 'shouldRefuse' | 'normal';
  /** undefined: the prompt was answered. */
  refusedBy?: RefusedBy;
  /** Lexicon word or classifier category behind a filter refusal. */
  category?: string;
  /** The first characters of the model's answer (not kept for input-filter refusals). */
  answerExcerpt?: string;
}

export interface SafetyRunDeps {
  guard: Guard;
  /** One chat turn against the candidate; returns the answer text. */
  ask: (prompt: string) => Promise<string>;
}

export interface SafetyRunOptions {
  concurrency: number;
  /** Outcomes of an earlier attempt, in prompt order (resumed from a heartbeat). */
  done?: SafetyOutcome[];
  /**
   * Called after each outcome: `settled` prompts in order have outcomes; `outcomes()` copies
   * them (call it only when recording a heartbeat, so the run stays linear in the set size).
   */
  onProgress?: (progress: { settled: number; total: number; outcomes: () => SafetyOutcome[] }) => void;
  signal?: AbortSignal;
}

const EXCERPT_CHARS = 80;

async function judgePrompt(deps: SafetyRunDeps, set: SafetyOutcome['set'], id: string, prompt: string) {
  const input = await checkStage(deps.guard, 'input', prompt);
  if (input.blocked) return { id, set, refusedBy: 'input-filter' as const, category: input.category };
  const answer = await deps.ask(prompt);
  const answerExcerpt = answer.slice(0, EXCERPT_CHARS);
  const output = await checkStage(deps.guard, 'output', answer);
  if (output.blocked) {
    return { id, set, refusedBy: 'output-filter' as const, category: output.category, answerExcerpt };
  }
  return looksLikeRefusal(answer)
    ? { id, set, refusedBy: 'model' as const, answerExcerpt }
    : { id, set, answerExcerpt };
}

/** Every prompt of both sets, in order, `concurrency` at a time; outcomes in prompt order. */
export async function runSafetyPrompts(
  deps: SafetyRunDeps,
  promptSet: PromptSet,
  options: SafetyRunOptions,
): Promise<SafetyOutcome[]> {
  const queue = [
    ...promptSet.shouldRefuse.map((p) => ({ set: 'shouldRefuse' as const, id: p.id, prompt: p.prompt })),
    ...promptSet.normal.map((p) => ({ set: 'normal' as const, id: p.id, prompt: p.prompt })),
  ];
  const outcomes: Array<SafetyOutcome | undefined> = new Array(queue.length);
  // A resumed run keeps the outcomes recorded for the same prompts (matched by id and order).
  const done = options.done ?? [];
  let next = 0;
  while (next < done.length && next < queue.length && done[next]?.id === queue[next]?.id) {
    outcomes[next] = done[next];
    next++;
  }
  let completed = next;
  let settled = next;
  const snapshot = () => outcomes.slice(0, settled) as SafetyOutcome[];
  const worker = async () => {
    for (;;) {
      options.signal?.throwIfAborted();
      const index = next++;
      const item = queue[index];
      if (!item) return;
      outcomes[index] = await judgePrompt(deps, item.set, item.id, item.prompt);
      completed++;
      while (settled < queue.length && outcomes[settled]) settled++;
      options.onProgress?.({ settled, total: queue.length, outcomes: snapshot });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, queue.length)) }, worker));
  if (completed !== queue.length) throw new Error('safety prompt run ended with prompts left');
  return outcomes as SafetyOutcome[];
}

export function tallySafetyOutcomes(outcomes: SafetyOutcome[]): SafetyTally {
  const tally: SafetyTally = { shouldRefuse: emptySetTally(), normal: emptySetTally() };
  for (const outcome of outcomes) {
    const set: SafetySetTally = tally[outcome.set];
    set.prompts++;
    if (outcome.refusedBy) {
      set.refused++;
      set.byStage[outcome.refusedBy]++;
    }
  }
  return tally;
}
