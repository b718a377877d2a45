import { describe, expect, it } from 'vitest';
import { specActivities } from '../../../activities/spec.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { rawText } from '../../../workflows/resolve-spec.js';

// The spec resolution every workflow records as its first step (workflows/resolve-spec.ts):
// the same parse as before, done once; bad input is an answer naming the fields.

describe('spec resolution (local activities)', () => {
  it('fills every default, exactly as the parser does', async () => {
    const input = { model: 'qwen/Qwen-7B-Chat' };
    const resolved = await specActivities.resolvePromotionSpec(input);
    expect(resolved).toEqual({ ok: true, spec: parsePromotionSpec(input) });
    if (!resolved.ok) throw new Error('unreachable');
    expect(resolved.spec.approvals).toEqual({
      beforeCanary: true,
      beforePromote: true,
      timeoutSeconds: 86_400,
    });
    expect(resolved.spec.serving.name).toBe('qwen-7b-chat');
  });

  it('answers bad input with the subject and every bad field, without throwing', async () => {
    const resolved = await specActivities.resolvePromotionSpec({ model: 'nope', quantization: { bits: 3 } });
    expect(resolved.ok).toBe(false);
    if (resolved.ok) throw new Error('unreachable');
    expect(resolved.subject).toBe('promotion spec');
    expect(resolved.issues.map((i) => i.path).sort()).toEqual(['model', 'quantization.bits']);
    expect(await specActivities.resolveCanaryReleaseSpec('{')).toMatchObject({ ok: false });
    expect(await specActivities.resolveLoadTestRequest({})).toMatchObject({ ok: false });
    expect(
      await specActivities.resolveReindexRequest({ source: { kind: 'directory', path: '/kb' } }),
    ).toMatchObject({ ok: true, spec: { table: 'qwen_knowledge', mode: 'auto' } });
  });

  it('shows raw start fields while the spec resolves', () => {
    expect(rawText({ serving: { namespace: 'llm-prod' } }, 'serving', 'namespace')).toBe('llm-prod');
    expect(rawText({ serving: { namespace: 7 } }, 'serving', 'namespace')).toBe('');
    expect(rawText('{"model":"x"}', 'model')).toBe('');
    expect(rawText(null, 'model')).toBe('');
  });
});
