import { z } from 'zod';
import { isDnsLabel, isDnsSubdomain } from './names.js';

/** One bad field: where it is (dotted path) and which rule it broke. */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Bad input, refused at the edge. The message lists every bad field so a user fixing a
 * Temporal UI start form sees all problems at once, not one per attempt.
 */
export class InputValidationError extends Error {
  override readonly name = 'InputValidationError';
  readonly failureType: string = 'InvalidInput';
  readonly retryable = false;
  constructor(
    readonly subject: string,
    readonly issues: FieldIssue[],
  ) {
    super(`invalid ${subject}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
  }

  get failureDetails(): FieldIssue[] {
    return this.issues;
  }
}

export function issuesFromZod(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
}

/**
 * Parses `input` with `schema`, accepting a JSON string too (the Temporal UI and the CLI
 * may hand us text). Throws InputValidationError naming each bad field.
 */
export function parseInput<T extends z.ZodType>(subject: string, schema: T, input: unknown): z.output<T> {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new InputValidationError(subject, [
        { path: '', message: `malformed JSON (${(err as Error).message})` },
      ]);
    }
  }
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputValidationError(subject, [
      {
        path: '',
        message: `expected a JSON object, got ${Array.isArray(value) ? 'an array' : String(value === null ? 'null' : typeof value)}`,
      },
    ]);
  }
  const result = schema.safeParse(value);
  if (!result.success) throw new InputValidationError(subject, issuesFromZod(result.error));
  return result.data;
}

// Hub model ids look like "qwen/Qwen-7B-Chat": owner and name, each starting with an
// alphanumeric. Refusing "." / ".." segments and slashes beyond one blocks path traversal
// when the id becomes part of a storage key or a local path.
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$/;

export function modelIdProblem(id: string): string | undefined {
  if (!MODEL_ID.test(id)) {
    return 'must be "<owner>/<name>" using letters, digits, ".", "_" and "-" (e.g. "qwen/Qwen-7B-Chat")';
  }
  if (id.split('/').some((segment) => segment === '.' || segment === '..' || segment.includes('..'))) {
    return 'must not contain ".." (path traversal)';
  }
  return undefined;
}

export const modelIdSchema = z.string().superRefine((id, ctx) => {
  const problem = modelIdProblem(id);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Hub revisions: branch, tag or commit; no path separators. */
export const revisionSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/,
    'must be a branch, tag or commit (letters, digits, ".", "_", "-")',
  )
  .refine((r) => !r.includes('..'), 'must not contain ".."');

/**
 * An object-store key or a relative file path inside a model: forward slashes only,
 * no absolute paths, no "." or ".." segments, no empty segments, no control characters.
 */
export function storageKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'must not be empty';
  if (key.length > 1024) return 'must be at most 1024 characters';
  if (key.startsWith('/')) return 'must be relative (no leading "/")';
  if (key.includes('\\')) return 'must use "/" as separator (no "\\")';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'must not contain control characters';
  const segments = key.split('/');
  if (segments.some((s) => s === '..' || s === '.'))
    return 'must not contain "." or ".." segments (path traversal)';
  if (segments.slice(0, -1).some((s) => s === '')) return 'must not contain empty segments ("//")';
  return undefined;
}

export function assertStorageKey(key: string, field = 'key'): string {
  const problem = storageKeyProblem(key);
  if (problem)
    throw new InputValidationError('storage key', [
      { path: field, message: `${JSON.stringify(key)} ${problem}` },
    ]);
  return key;
}

export const storageKeySchema = z.string().superRefine((key, ctx) => {
  const problem = storageKeyProblem(key);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const dnsLabelSchema = z
  .string()
  .refine(
    isDnsLabel,
    'must be a DNS-1123 label: lower-case letters, digits and "-", start and end alphanumeric, at most 63 characters',
  );

export const dnsSubdomainSchema = z
  .string()
  .refine(
    isDnsSubdomain,
    'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", at most 253 characters',
  );

/**
 * A local file or directory path in a request (a prompt file, a knowledge directory):
 * obviously bad ones are refused at the edge. Where it may point is the worker's
 * confinement (src/config/confinement.ts), checked after resolving it.
 */
export function localPathProblem(p: string): string | undefined {
  if (p.length === 0) return 'must not be empty';
  if (p.length > 4096) return 'must be at most 4096 characters';
  if (p.includes('\u0000')) return 'must not contain NUL bytes';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0001-\u001f\u007f]/.test(p)) return 'must not contain control characters';
  if (p.split(/[/\\]/).some((segment) => segment === '..'))
    return 'must not contain ".." segments (path traversal)';
  return undefined;
}

export const localPathSchema = z.string('must be a path string').superRefine((p, ctx) => {
  const problem = localPathProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
