import { readStructuredFile } from '../config/structured-file.js';
import { FORBIDDEN_KEYS_RULE, forbiddenKeyPaths, isForbiddenKey, setOwnPath } from '../domain/safe-object.js';
import { InputValidationError } from '../domain/validation.js';

// The spec a `promote` / `canary` starts from: a JSON/YAML file (size-capped, strict
// UTF-8, alias-limited, no prototype keys) and --set path=value overrides on top.

/** Reads a spec file ("-" = stdin); it must hold an object. */
export function readSpecFile(file: string): Record<string, unknown> {
  const value = readStructuredFile(file, { subject: 'spec file' });
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputValidationError('spec file', [{ path: file, message: 'must contain an object' }]);
  }
  return value as Record<string, unknown>;
}

/**
 * --set a.b=value: value is JSON when it parses (numbers, booleans, arrays), else a string.
 * A path segment (or a key inside a JSON value) named __proto__, constructor or prototype is
 * refused; levels are created with own-property writes only, so no prototype is reachable.
 */
export function applySets(target: Record<string, unknown>, sets: string[]): void {
  for (const assignment of sets) {
    const eq = assignment.indexOf('=');
    if (eq <= 0)
      throw new InputValidationError('--set', [
        { path: assignment, message: 'must be path=value, e.g. canary.steps=[10,50,100]' },
      ]);
    const pathText = assignment.slice(0, eq);
    const raw = assignment.slice(eq + 1);
    const parts = pathText.split('.');
    if (parts.some((part) => part.trim() === ''))
      throw new InputValidationError('--set', [
        { path: pathText, message: 'path segments must not be empty (e.g. canary.steps)' },
      ]);
    const bad = parts.find(isForbiddenKey);
    if (bad !== undefined)
      throw new InputValidationError('--set', [
        {
          path: pathText,
          message: `path segment ${JSON.stringify(bad)} is not allowed: ${FORBIDDEN_KEYS_RULE}`,
        },
      ]);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {}
    const inValue = forbiddenKeyPaths(value);
    if (inValue.length > 0)
      throw new InputValidationError('--set', [
        {
          path: pathText,
          message: `the value has key ${inValue.map((p) => JSON.stringify(p)).join(', ')}, not allowed: ${FORBIDDEN_KEYS_RULE}`,
        },
      ]);
    setOwnPath(target, parts, value);
  }
}
