import type { PromptSource } from '../../domain/load-test.js';
import { InputValidationError } from '../../domain/validation.js';
import { seededRandom } from '../arrivals.js';
import { BUILTIN_ZH_PROMPTS } from './builtin-zh.js';
import { readPromptJsonl } from './jsonl.js';
import { syntheticPrompts } from './synthetic.js';
import type { PromptItem } from './types.js';

export { BUILTIN_ZH_PROMPTS } from './builtin-zh.js';
export { parsePromptJsonl, readPromptJsonl } from './jsonl.js';
export { syntheticPrompts } from './synthetic.js';
export type { ChatMessage, PromptItem } from './types.js';

/** Characters in all of a prompt's messages. */
export function promptChars(prompt: PromptItem): number {
  return prompt.messages.reduce((n, m) => n + m.content.length, 0);
}

/**
 * The prompts a source names, in a seeded random order (so runs are repeatable). `promptRoots`
 * confines a file source (see readPromptJsonl); absent, any readable file is taken.
 */
export async function loadPrompts(
  source: PromptSource,
  seed: number,
  options: { promptRoots?: readonly string[] } = {},
): Promise<PromptItem[]> {
  let items: PromptItem[];
  switch (source.kind) {
    case 'builtin-zh': {
      const maxChars = source.maxChars ?? Number.POSITIVE_INFINITY;
      items = BUILTIN_ZH_PROMPTS.filter((p) => promptChars(p) <= maxChars);
      if (items.length === 0) {
        throw new InputValidationError('load test request', [
          { path: 'prompts.maxChars', message: `no built-in prompt is that short (${maxChars} characters)` },
        ]);
      }
      break;
    }
    case 'synthetic':
      items = syntheticPrompts({ ...source, seed });
      break;
    case 'jsonl':
      items = await readPromptJsonl(source.path, { roots: options.promptRoots });
      break;
  }
  const random = seededRandom(seed ^ 0x9e3779b9);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as PromptItem, items[i] as PromptItem];
  }
  return items;
}
