import { constants } from 'node:fs';
import { type FileHandle, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputValidationError, localPathProblem } from '../domain/validation.js';

// What a workflow's input may make a worker touch. Anyone who can start a workflow chooses
// its paths and URLs, so the worker (not the input) decides which local files and which
// HTTP targets are reachable: prompt files and knowledge directories must lie under a
// configured root (after resolving symlinks and ".."), load-test targets must match the
// allowlist. Refusals are InputValidationErrors (non-retryable), name the field and the
// rule, and are raised before any byte of a file is read; they never quote file contents.

export interface ConfinementPolicy {
  /** Directories prompt files (load-test "jsonl" sources) may come from. */
  promptRoots: readonly string[];
  /** Directories a knowledge "directory" source may be (or lie under). */
  knowledgeRoots: readonly string[];
  /**
   * Load-test / analysis targets: URL prefixes ("http://host:8000/v1") or host patterns
   * ("127.0.0.1", "localhost:8000", "*.svc.cluster.local", "[::1]").
   */
  loadTestTargets: readonly string[];
}

/** Env variables that configure each rule (named in refusals so operators know what to set). */
export const CONFINEMENT_ENV = {
  promptRoots: 'QWENOPS_PROMPT_ROOTS',
  knowledgeRoots: 'QWENOPS_KNOWLEDGE_ROOTS',
  loadTestTargets: 'QWENOPS_LOADTEST_TARGETS',
} as const;

/** A path or URL the worker's configuration does not allow. */
export class ConfinementError extends InputValidationError {
  constructor(subject: string, field: string, message: string) {
    super(subject, [{ path: field, message }]);
  }
}

export interface ConfineOptions {
  /** The refused request, e.g. "load test request". */
  subject: string;
  /** Dotted field the path came from, e.g. "prompts.path". */
  field: string;
  /** Which rule: the config key of the roots (promptRoots | knowledgeRoots). */
  rule: 'promptRoots' | 'knowledgeRoots';
}

function isUnder(child: string, root: string): boolean {
  if (child === root) return true;
  const prefix = root.endsWith(path.sep) ? root : `${root}${path.sep}`;
  return child.startsWith(prefix);
}

/** Roots as real paths; roots that do not exist (yet) are left out. */
async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const root of roots) {
    const real = await realpath(path.resolve(root)).catch(() => undefined);
    if (real !== undefined) out.push(real);
  }
  return out;
}

function ruleText(rule: ConfineOptions['rule']): string {
  return `${rule === 'promptRoots' ? 'prompt file roots' : 'knowledge directory roots'} (confinement.${rule}, ${CONFINEMENT_ENV[rule]})`;
}

/**
 * The real path of `input` when it lies under one of `roots`, else a ConfinementError.
 * A path that is outside lexically is refused without touching the filesystem (so the
 * answer does not tell whether it exists); one inside is resolved (symlinks, "..") and
 * must still be inside.
 */
export async function confinePath(
  input: string,
  roots: readonly string[],
  options: ConfineOptions,
): Promise<string> {
  const refuse = (message: string) => new ConfinementError(options.subject, options.field, message);
  const problem = localPathProblem(input);
  if (problem) throw refuse(problem);
  if (roots.length === 0) {
    throw refuse(`local paths are refused: no ${ruleText(options.rule)} are configured`);
  }
  const allowed = await realRoots(roots);
  const absolute = path.resolve(input);
  const outside = () => refuse(`${JSON.stringify(input)} is outside the allowed ${ruleText(options.rule)}`);
  // Lexical check against the configured roots as written and as resolved.
  const lexicalRoots = [...roots.map((r) => path.resolve(r)), ...allowed];
  if (!lexicalRoots.some((root) => isUnder(absolute, root))) throw outside();
  let real: string;
  try {
    real = await realpath(absolute);
  } catch (err) {
    throw refuse(
      `cannot resolve ${JSON.stringify(input)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  if (!allowed.some((root) => isUnder(real, root))) {
    throw refuse(
      `${JSON.stringify(input)} resolves (through a symlink) outside the allowed ${ruleText(options.rule)}`,
    );
  }
  return real;
}

/**
 * Opens a regular file confined to `roots` for reading: the resolved path is opened without
 * following a final symlink and without blocking (FIFOs, devices are refused), and the
 * opened file must be the one that was checked.
 */
export async function openConfinedFile(
  input: string,
  roots: readonly string[],
  options: ConfineOptions,
): Promise<FileHandle> {
  const real = await confinePath(input, roots, options);
  const refuse = (message: string) => new ConfinementError(options.subject, options.field, message);
  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw refuse(`cannot open ${JSON.stringify(input)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    const [opened, checked] = await Promise.all([handle.stat(), stat(real)]);
    if (!opened.isFile()) throw refuse(`${JSON.stringify(input)} is not a regular file`);
    if (opened.ino !== checked.ino || opened.dev !== checked.dev) {
      throw refuse(`${JSON.stringify(input)} changed while it was being opened`);
    }
    return handle;
  } catch (err) {
    await handle.close();
    if (err instanceof ConfinementError) throw err;
    throw refuse(`cannot open ${JSON.stringify(input)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Reads a whole confined file as UTF-8, refusing files over `maxBytes`. */
export async function readConfinedTextFile(
  input: string,
  roots: readonly string[],
  options: ConfineOptions & { maxBytes: number },
): Promise<string> {
  const handle = await openConfinedFile(input, roots, options);
  try {
    const { size } = await handle.stat();
    if (size > options.maxBytes) {
      throw new ConfinementError(
        options.subject,
        options.field,
        `${JSON.stringify(input)} is over ${options.maxBytes} bytes`,
      );
    }
    return await handle.readFile({ encoding: 'utf8' });
  } finally {
    await handle.close();
  }
}

// ---- URLs ----

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

function portOf(url: URL): string {
  return url.port || (DEFAULT_PORT[url.protocol] ?? '');
}

function hostMatches(pattern: string, hostname: string): boolean {
  const p = pattern.toLowerCase();
  const h = hostname.toLowerCase();
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
  return p === h;
}

/** Whether one allowlist entry admits `target`. */
function entryAdmits(entry: string, target: URL): boolean {
  const trimmed = entry.trim();
  if (trimmed === '') return false;
  if (trimmed.includes('://')) {
    let prefix: URL;
    try {
      prefix = new URL(trimmed);
    } catch {
      return false;
    }
    if (prefix.protocol !== target.protocol) return false;
    if (prefix.hostname.toLowerCase() !== target.hostname.toLowerCase()) return false;
    if (portOf(prefix) !== portOf(target)) return false;
    const base = prefix.pathname.replace(/\/+$/, '');
    return base === '' || target.pathname === base || target.pathname.startsWith(`${base}/`);
  }
  // host, host:port, *.suffix, [v6] or [v6]:port
  let host = trimmed;
  let port: string | undefined;
  const v6 = /^(\[[^\]]+\])(?::(\d+))?$/.exec(trimmed);
  if (v6) {
    host = v6[1] as string;
    port = v6[2];
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon > 0 && /^\d+$/.test(trimmed.slice(colon + 1))) {
      host = trimmed.slice(0, colon);
      port = trimmed.slice(colon + 1);
    }
  }
  if (!hostMatches(host, target.hostname)) return false;
  return port === undefined || port === portOf(target);
}

/** Whether `url` is an http(s) URL without credentials that the allowlist admits. */
export function urlAllowed(url: string, allowlist: readonly string[]): boolean {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return false;
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return false;
  if (target.username !== '' || target.password !== '') return false;
  return allowlist.some((entry) => entryAdmits(entry, target));
}

/** Refuses `url` (naming `field`) unless the load-test target allowlist admits it. */
export function confineUrl(url: string, allowlist: readonly string[], subject: string, field: string): void {
  if (urlAllowed(url, allowlist)) return;
  const rule = `confinement.loadTestTargets, ${CONFINEMENT_ENV.loadTestTargets}`;
  throw new ConfinementError(
    subject,
    field,
    allowlist.length === 0
      ? `load-test targets are refused: no allowed targets are configured (${rule})`
      : `${JSON.stringify(url)} is not an allowed load-test target (${rule}: ${allowlist.join(', ')})`,
  );
}
