import { describe, expect, it } from 'vitest';
import { integerOption } from '../../../src/cli/options.js';
import { runCli } from './run-cli.js';

// Numeric and identifier flags are parsed by commander before a command runs: a bad value
// exits 64 naming the flag and the rule, and nothing (Temporal, Postgres) is contacted.

describe('numeric and identifier flags', () => {
  it.each([
    [['list', '--limit', 'abc'], "--limit: must be a positive integer, got 'abc'"],
    [['list', '--limit', '0'], "--limit: must be a positive integer, got '0'"],
    [['list', '--limit', '1e3'], "--limit: must be a positive integer, got '1e3'"],
    [['list', '--limit', '100001'], "--limit: must be at most 10000, got '100001'"],
    [['kb', 'search', 'q', '--top', 'abc'], "--top: must be a positive integer, got 'abc'"],
    // Beyond hnsw.ef_search's range: used to reach Postgres and fail there with exit 1.
    [['kb', 'search', 'q', '--top', '5000'], "--top: must be at most 1000, got '5000'"],
    [['kb', 'search', 'q', '-k', '1e20'], "--top: must be a positive integer, got '1e20'"],
    [['kb', 'ask', 'q', '--top', '-1'], "--top: must be a positive integer, got '-1'"],
    [['kb', 'search', 'q', '--table', 'Robert"; drop'], '--table: must be a lower-case SQL identifier'],
    [['kb', 'rollback', '--table', 'x'.repeat(40)], '--table: must be a lower-case SQL identifier'],
    [['kb', 'status', '--table', 'Bad'], '--table: must be a lower-case SQL identifier'],
    [['kb', 'db', '--port', 'abc'], "--port: must be a positive integer, got 'abc'"],
    [['kb', 'db', '--port', '70000'], "--port: must be at most 65535, got '70000'"],
    [['dev', '--temporal-port', 'x'], "--temporal-port: must be a positive integer, got 'x'"],
  ])('qwenops %j exits 64: %s', async (args, message) => {
    const { code, stderr } = await runCli(...args);
    expect(code).toBe(64);
    expect(stderr).toContain(message);
  });

  it('accepts plain positive integers', () => {
    const parse = integerOption('--limit', { max: 10 });
    expect(parse('7')).toBe(7);
    expect(parse('10')).toBe(10);
    expect(() => parse(' 7')).toThrow(/--limit: must be a positive integer/);
  });
});
