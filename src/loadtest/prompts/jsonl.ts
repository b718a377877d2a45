import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { readConfinedTextFile } from '../../config/confinement.js';
import { type FieldIssue, InputValidationError } from '../../domain/validation.js';
import type { PromptItem } from './types.js';

// A prompt file: one JSON object per line, either {"messages":[{"role","content"}...]}
// or {"prompt":"..."}, with optional "id" and "max_tokens". Blank lines and lines starting
// with "#" are skipped. Every bad line is reported (line number and rule), not just the first.

const message = z
  .object({
    role: z.enum(['system', 'user', 'assistant'], 'must be "system", "user" or "assistant"'),
    content: z.string('must be a string'),
  })
  .strict();

const line = z
  .object({
    id: z.union([z.string(), z.number()]).optional(),
    messages: z.array(message).min(1, 'must hold at least one message').optional(),
    prompt: z.string().min(1, 'must not be empty').optional(),
    max_tokens: z.number().int('must be a whole number').min(1, 'must be >= 1').optional(),
  })
  .strict()
  .refine((l) => (l.messages === undefined) !== (l.prompt === undefined), {
    message: 'needs exactly one of "messages" or "prompt"',
  });

const MAX_ISSUES = 20;

export function parsePromptJsonl(text: string, source = 'prompts'): PromptItem[] {
  const items: PromptItem[] = [];
  const issues: FieldIssue[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length && issues.length < MAX_ISSUES; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const where = `${source}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      // Never the parser's message: it quotes the line (the file may not be a prompt file).
      const position = /position (\d+)/.exec((err as Error).message)?.[1];
      issues.push({
        path: where,
        message: `not JSON${position ? ` (at column ${Number(position) + 1})` : ''}`,
      });
      continue;
    }
    const parsed = line.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.map(String).join('.');
        issues.push({ path: field ? `${where} ${field}` : where, message: issue.message });
      }
      continue;
    }
    const { id, messages, prompt, max_tokens } = parsed.data;
    items.push({
      id: id !== undefined ? String(id) : `line-${i + 1}`,
      messages: messages ?? [{ role: 'user', content: prompt as string }],
      ...(max_tokens !== undefined ? { maxTokens: max_tokens } : {}),
    });
  }
  if (issues.length > 0) throw new InputValidationError('prompt file', issues);
  if (items.length === 0) {
    throw new InputValidationError('prompt file', [{ path: source, message: 'holds no prompts' }]);
  }
  return items;
}

/** Largest prompt file read (the prompts are held in memory). */
export const MAX_PROMPT_FILE_BYTES = 256 * 1024 * 1024;

/**
 * Reads a prompt file. With `roots` (a worker: the path came from workflow input) the file
 * must lie under one of them (src/config/confinement.ts), checked before it is opened;
 * without (the CLI running a test itself, as its user) any readable file is taken.
 */
export async function readPromptJsonl(
  path: string,
  options: { roots?: readonly string[] } = {},
): Promise<PromptItem[]> {
  let text: string;
  if (options.roots !== undefined) {
    text = await readConfinedTextFile(path, options.roots, {
      subject: 'load test request',
      field: 'prompts.path',
      rule: 'promptRoots',
      maxBytes: MAX_PROMPT_FILE_BYTES,
    });
    return parsePromptJsonl(text, path);
  }
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new InputValidationError('load test request', [
      {
        path: 'prompts.path',
        message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      },
    ]);
  }
  return parsePromptJsonl(text, path);
}
