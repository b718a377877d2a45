import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { InputValidationError, issuesFromZod } from '../../domain/validation.js';

// The sandbox's stand-in for Kubernetes Secrets: a map secretName -> key -> value the
// daemon is started with (QWENOPS_SANDBOX_SECRETS as JSON, or a JSON file). Values are
// only ever put into a Job's environment; never logged, never persisted.

const secretsSchema = z.record(z.string().min(1), z.record(z.string().min(1), z.string()));
export type SandboxSecrets = z.output<typeof secretsSchema>;

export function parseSecrets(source: string, text: string): SandboxSecrets {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InputValidationError(`sandbox secrets (${source})`, [
      { path: '', message: `malformed JSON (${(err as Error).message})` },
    ]);
  }
  const result = secretsSchema.safeParse(value);
  if (!result.success)
    throw new InputValidationError(`sandbox secrets (${source})`, issuesFromZod(result.error));
  return result.data;
}

export function loadSecrets(env: NodeJS.ProcessEnv, file?: string): SandboxSecrets {
  const secrets: SandboxSecrets = {};
  const path = file ?? env.QWENOPS_SANDBOX_SECRETS_FILE;
  if (path) Object.assign(secrets, parseSecrets(path, readFileSync(path, 'utf8')));
  if (env.QWENOPS_SANDBOX_SECRETS) {
    Object.assign(secrets, parseSecrets('QWENOPS_SANDBOX_SECRETS', env.QWENOPS_SANDBOX_SECRETS));
  }
  return secrets;
}
