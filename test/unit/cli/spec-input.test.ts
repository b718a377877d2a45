import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applySets, readSpecFile } from '../../../src/cli/spec-input.js';
import { loadConfig } from '../../../src/config/config.js';
import { MAX_STRUCTURED_FILE_BYTES } from '../../../src/config/structured-file.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { runCli } from './run-cli.js';

// Hostile spec input (issue 9): --set paths that reach Object.prototype, oversized and
// alias-bomb YAML, non-UTF-8 bytes. Each is refused at the CLI edge with exit 64.

const dir = mkdtempSync(path.join(os.tmpdir(), 'qwenops-spec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Uint8Array) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

const polluted = () => ({}) as Record<string, unknown>;

describe('qwenops --set', () => {
  it.each([
    '__proto__.polluted=yes',
    'canary.__proto__.polluted=yes',
    'constructor.prototype.polluted=yes',
    'hub.prototype=1',
  ])('refuses %s with exit 64, naming --set and the rule, and pollutes nothing', async (assignment) => {
    const { code, stderr } = await runCli('promote', 'qwen/Qwen-7B-Chat', '--set', assignment);
    expect(code).toBe(64);
    expect(stderr).toContain('--set');
    expect(stderr).toMatch(/the keys __proto__, constructor and prototype are refused/);
    expect(polluted().polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses those keys inside a JSON value too', () => {
    expect(() => applySets({}, ['hub={"__proto__":{"polluted":1}}'])).toThrow(InputValidationError);
    expect(() => applySets({}, ['a..b=1'])).toThrow(/must not be empty/);
    expect(polluted().polluted).toBeUndefined();
  });

  it('builds overrides from own properties only, and the spec still parses', () => {
    const raw: Record<string, unknown> = { model: 'qwen/Qwen-7B-Chat', requestedBy: 'test' };
    applySets(raw, ['canary.steps=[10,50,100]', 'hub.revision=v1.0']);
    expect(Object.getPrototypeOf(raw.canary)).toBeNull();
    const spec = parsePromotionSpec(raw);
    expect(spec.canary.steps).toEqual([10, 50, 100]);
    expect(spec.hub.revision).toBe('v1.0');
    // An inherited name is not walked into: "toString" becomes an own key, not Object's method.
    const target: Record<string, unknown> = {};
    applySets(target, ['toString.x=1']);
    expect(Object.hasOwn(target, 'toString')).toBe(true);
    expect(typeof Object.prototype.toString).toBe('function');
  });
});

describe('spec files', () => {
  it('refuses a file over the size cap before parsing, exit 64', async () => {
    const big = file('big.yaml', `a: "${'x'.repeat(MAX_STRUCTURED_FILE_BYTES)}"\n`);
    const { code, stderr } = await runCli('promote', 'qwen/Qwen-7B-Chat', '--spec', big);
    expect(code).toBe(64);
    expect(stderr).toContain(big);
    expect(stderr).toMatch(/larger than 262144 bytes \(256 KiB\).*refused before parsing/);
  });

  it('refuses invalid UTF-8, naming the file', async () => {
    const gbk = file(
      'gbk.yaml',
      Buffer.from([0x6d, 0x6f, 0x64, 0x65, 0x6c, 0x3a, 0x20, 0xc4, 0xe3, 0xba, 0xc3, 0x0a]),
    );
    const { code, stderr } = await runCli('promote', 'qwen/Qwen-7B-Chat', '--spec', gbk);
    expect(code).toBe(64);
    expect(stderr).toContain(`${gbk}: is not valid UTF-8`);
    // A UTF-8 byte-order mark is fine.
    const bom = file(
      'bom.yaml',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('requestedBy: 张三\n')]),
    );
    expect(readSpecFile(bom)).toEqual({ requestedBy: '张三' });
  });

  it('refuses a YAML alias bomb and duplicate keys', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const bomb = file('bomb.yaml', `${levels.join('\n')}\n`);
    expect(() => readSpecFile(bomb)).toThrow(/Excessive alias count/);
    const dup = file('dup.yaml', 'model: a\nhub:\n  revision: x\n  revision: y\n');
    expect(() => readSpecFile(dup)).toThrow(/duplicate key "revision"/);
  });

  it.each([
    ['proto.yaml', '__proto__:\n  polluted: yes\n'],
    ['proto.json', '{"canary": {"constructor": {"prototype": {"polluted": 1}}}}'],
  ])('refuses prototype keys in %s', async (name, content) => {
    const spec = file(name, content);
    const { code, stderr } = await runCli('promote', 'qwen/Qwen-7B-Chat', '--spec', spec);
    expect(code).toBe(64);
    expect(stderr).toMatch(/key not allowed: the keys __proto__, constructor and prototype are refused/);
    expect(polluted().polluted).toBeUndefined();
  });

  it('parses a large flat YAML map in linear time (duplicate check is not quadratic)', () => {
    const yaml = (keys: number) => Array.from({ length: keys }, (_, i) => `key${i}: ${i}`).join('\n');
    const small = file('small.yaml', yaml(1_500));
    const large = file('large.yaml', yaml(15_000)); // ~200 KB, under the cap
    const time = (p: string) => {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        readSpecFile(p);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    time(small); // warm up
    const ratio = time(large) / Math.max(time(small), 0.5);
    // 10x the keys: ~10x the time when linear, ~100x with a quadratic duplicate-key check.
    expect(ratio).toBeLessThan(35);
  });

  it('guards config files the same way', () => {
    const config = file('config.yaml', '__proto__:\n  codecKey: c2VjcmV0\n');
    expect(() => loadConfig({ env: {}, file: config })).toThrow(/key not allowed/);
  });
});
