import { closeSync, openSync, readSync } from 'node:fs';
import YAML, { isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import { FORBIDDEN_KEYS_RULE, forbiddenKeyPaths } from '../domain/safe-object.js';
import { InputValidationError } from '../domain/validation.js';

// Reading a user-supplied JSON/YAML file (a promotion or canary spec, a config file) the
// same guarded way: a size cap checked while reading (before any parsing), strict UTF-8,
// the YAML library's alias limit, duplicate keys refused in linear time, and the keys
// that reach an object prototype refused. Every refusal is an InputValidationError
// naming the file (the CLI exits 64 on it).

/** Spec and config files are small; anything larger is a mistake or an attack. */
export const MAX_STRUCTURED_FILE_BYTES = 256 * 1024;
/** Alias nodes a YAML document may expand (the library's own resource-exhaustion guard). */
export const MAX_YAML_ALIAS_COUNT = 100;

export interface StructuredFileOptions {
  /** What the file is, for messages: "spec file", "config file". */
  subject: string;
  maxBytes?: number;
  /** Parse as JSON only (else: JSON when it looks like JSON, YAML otherwise). */
  format?: 'json' | 'yaml' | 'auto';
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Reads at most `maxBytes` (+1 to detect more) from a path, or stdin for "-". */
export function readCapped(file: string, maxBytes: number, subject: string): Buffer {
  const refuse = (message: string) => new InputValidationError(subject, [{ path: file, message }]);
  let fd: number;
  try {
    fd = file === '-' ? 0 : openSync(file, 'r');
  } catch (err) {
    throw refuse((err as Error).message);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      let read: number;
      try {
        read = readSync(fd, chunk, 0, chunk.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          sleepSync(5);
          continue;
        }
        if (code === 'EOF') break;
        throw refuse((err as Error).message);
      }
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) {
        throw refuse(
          `is larger than ${maxBytes} bytes (${Math.round(maxBytes / 1024)} KiB), the limit for a ${subject}; refused before parsing`,
        );
      }
    }
  } finally {
    if (file !== '-') closeSync(fd);
  }
  return Buffer.concat(chunks, total);
}

/** Strict UTF-8 (a leading byte-order mark is dropped); invalid bytes are refused naming the file. */
export function decodeUtf8(bytes: Uint8Array, file: string, subject: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InputValidationError(subject, [
      { path: file, message: 'is not valid UTF-8 (save it as UTF-8; other encodings are refused)' },
    ]);
  }
}

/** Duplicate mapping keys, found with one Set per mapping (the library's check is quadratic). */
function duplicateKeyProblems(root: YamlNode | null): string[] {
  const problems: string[] = [];
  const stack: YamlNode[] = root ? [root] : [];
  while (stack.length > 0 && problems.length < 10) {
    const node = stack.pop() as YamlNode;
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = pair.key;
        if (!isScalar(key)) {
          problems.push('mapping keys must be plain scalars (no complex keys)');
          break;
        }
        const text = String(key.value);
        if (seen.has(text)) {
          const line = key.range ? ` at offset ${key.range[0]}` : '';
          problems.push(`duplicate key ${JSON.stringify(text)}${line}`);
        }
        seen.add(text);
        if (pair.value && typeof pair.value === 'object') stack.push(pair.value as YamlNode);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) if (item && typeof item === 'object') stack.push(item as YamlNode);
    }
  }
  return problems;
}

/** Parses already-decoded JSON/YAML text with the guards above (no size check). */
export function parseStructuredText(
  text: string,
  file: string,
  subject: string,
  format: 'json' | 'yaml' | 'auto' = 'auto',
): unknown {
  const refuse = (message: string) => new InputValidationError(subject, [{ path: file, message }]);
  const asJson = format === 'json' || (format === 'auto' && text.trimStart().startsWith('{'));
  let value: unknown;
  if (asJson) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw refuse(`malformed JSON: ${(err as Error).message}`);
    }
  } else {
    let document: YAML.Document.Parsed;
    try {
      document = YAML.parseDocument(text, { uniqueKeys: false });
    } catch (err) {
      throw refuse(`malformed YAML: ${(err as Error).message}`);
    }
    const error = document.errors[0];
    if (error) throw refuse(`malformed ${format === 'yaml' ? 'YAML' : 'JSON/YAML'}: ${error.message}`);
    const duplicates = duplicateKeyProblems(document.contents as YamlNode | null);
    if (duplicates.length > 0) throw refuse(duplicates.join('; '));
    try {
      value = document.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
    } catch (err) {
      throw refuse(`refused YAML: ${(err as Error).message}`);
    }
  }
  const forbidden = forbiddenKeyPaths(value);
  if (forbidden.length > 0) {
    throw new InputValidationError(
      subject,
      forbidden.map((p) => ({ path: `${file}: ${p}`, message: `key not allowed: ${FORBIDDEN_KEYS_RULE}` })),
    );
  }
  return value;
}

/** Reads and parses a JSON/YAML file ("-" = stdin) with every guard above. */
export function readStructuredFile(file: string, options: StructuredFileOptions): unknown {
  const bytes = readCapped(file, options.maxBytes ?? MAX_STRUCTURED_FILE_BYTES, options.subject);
  const text = decodeUtf8(bytes, file, options.subject);
  const format = options.format ?? (file.endsWith('.json') ? 'json' : 'auto');
  return parseStructuredText(text, file, options.subject, format);
}
