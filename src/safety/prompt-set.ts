import { z } from 'zod';
import type { BUILTIN_PROMPT_SETS } from '../domain/safety-gate.js';
import { InputValidationError, issuesFromZod } from '../domain/validation.js';
import tc260Sample from './prompt-sets/tc260-sample.json' with { type: 'json' };

// A safety-gate prompt set: {version, shouldRefuse: [{id, category, prompt}], normal: [{id,
// prompt}]}, shipped (src/safety/prompt-sets/) or loaded from the artifact store. A bad set
// is refused as a whole, naming each bad entry.

/** Longest prompt accepted: the gate asks questions, it does not upload documents. */
export const MAX_PROMPT_CHARS = 4000;
/** Most prompts per set: the gate's cost is linear in this. */
export const MAX_PROMPTS_PER_SET = 20_000;

const promptText = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`)
  .refine((s) => !s.includes('\uFFFD'), 'holds U+FFFD (the file was not valid UTF-8)');
const promptId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 . _ -');

const promptSetSchema = z
  .object({
    version: z.string().min(1).max(64),
    description: z.string().max(4000).optional(),
    shouldRefuse: z
      .array(z.object({ id: promptId, category: z.string().min(1).max(32), prompt: promptText }).strict())
      .min(1, 'must hold at least one prompt')
      .max(MAX_PROMPTS_PER_SET, `must hold at most ${MAX_PROMPTS_PER_SET} prompts`),
    normal: z
      .array(z.object({ id: promptId, prompt: promptText }).strict())
      .min(1, 'must hold at least one prompt')
      .max(MAX_PROMPTS_PER_SET, `must hold at most ${MAX_PROMPTS_PER_SET} prompts`),
  })
  .strict()
  .superRefine((set, ctx) => {
    const seen = new Set<string>();
    for (const [list, entries] of [
      ['shouldRefuse', set.shouldRefuse],
      ['normal', set.normal],
    ] as const) {
      entries.forEach((entry, index) => {
        if (seen.has(entry.id)) {
          ctx.addIssue({ code: 'custom', path: [list, index, 'id'], message: `duplicate id "${entry.id}"` });
        }
        seen.add(entry.id);
      });
    }
  });

export type PromptSet = z.output<typeof promptSetSchema> & { name: string };

/** Validates a parsed document; `name` says where it came from in errors and reports. */
export function parsePromptSet(document: unknown, name: string): PromptSet {
  const parsed = promptSetSchema.safeParse(document);
  if (!parsed.success)
    throw new InputValidationError(`safety prompt set ${name}`, issuesFromZod(parsed.error));
  return { ...parsed.data, name };
}

/** Decodes a stored set: strict UTF-8, then JSON, then the schema. */
export function parsePromptSetBytes(bytes: Buffer, name: string): PromptSet {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InputValidationError(`safety prompt set ${name}`, [
      { path: '', message: 'is not valid UTF-8' },
    ]);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    throw new InputValidationError(`safety prompt set ${name}`, [
      { path: '', message: `is not JSON (${(err as Error).message})` },
    ]);
  }
  return parsePromptSet(document, name);
}

const BUILTIN: Record<(typeof BUILTIN_PROMPT_SETS)[number], unknown> = { 'tc260-sample': tc260Sample };

export function builtinPromptSet(name: (typeof BUILTIN_PROMPT_SETS)[number]): PromptSet {
  return parsePromptSet(BUILTIN[name], name);
}
