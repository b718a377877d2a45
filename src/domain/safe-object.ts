// Keys that reach Object.prototype (or a constructor) when used as property names. User
// input (spec files, --set paths, config files) never needs them, so they are refused
// wherever user-supplied keys become object keys, and objects built from user paths use
// own-property reads and defineProperty writes, which never walk or change a prototype.

export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export const FORBIDDEN_KEYS_RULE = 'the keys __proto__, constructor and prototype are refused';

export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.has(key);
}

/**
 * Dotted paths of every forbidden own key in a parsed JSON/YAML value (at most `limit`).
 * Iterative, so a deeply nested document cannot overflow the stack.
 */
export function forbiddenKeyPaths(value: unknown, limit = 10): string[] {
  const found: string[] = [];
  const stack: Array<{ node: unknown; path: string }> = [{ node: value, path: '' }];
  while (stack.length > 0 && found.length < limit) {
    const { node, path } = stack.pop() as { node: unknown; path: string };
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push({ node: node[i], path: `${path}[${i}]` });
      continue;
    }
    const keys = Object.keys(node);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i] as string;
      const childPath = path ? `${path}.${key}` : key;
      if (isForbiddenKey(key)) {
        found.push(childPath);
        continue;
      }
      stack.push({ node: (node as Record<string, unknown>)[key], path: childPath });
    }
  }
  return found;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Sets `parts` (a path of own keys) in `target` to `value`, creating missing levels as
 * null-prototype objects. Throws on a forbidden key; reads only own properties and writes
 * with defineProperty, so neither a prototype nor an inherited setter is ever reached.
 */
export function setOwnPath(target: Record<string, unknown>, parts: readonly string[], value: unknown): void {
  if (parts.length === 0) throw new Error('empty path');
  const bad = parts.find(isForbiddenKey);
  if (bad !== undefined) throw new Error(`key ${JSON.stringify(bad)} is not allowed: ${FORBIDDEN_KEYS_RULE}`);
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = Object.hasOwn(node, part) ? node[part] : undefined;
    if (isPlainRecord(next)) {
      node = next;
      continue;
    }
    const created: Record<string, unknown> = Object.create(null);
    defineOwn(node, part, created);
    node = created;
  }
  defineOwn(node, parts[parts.length - 1] as string, value);
}

function defineOwn(node: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, writable: true, enumerable: true, configurable: true });
}
