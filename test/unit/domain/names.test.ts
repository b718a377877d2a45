import { describe, expect, it } from 'vitest';
import { dnsName, isDnsLabel, stageObjectName } from '../../../src/domain/names.js';

describe('deterministic object names', () => {
  it('are DNS-1123 labels, stable across calls, distinct per stage', () => {
    const a = stageObjectName('promote-qwen-qwen-7b-chat-master', 'quantize');
    expect(isDnsLabel(a)).toBe(true);
    expect(stageObjectName('promote-qwen-qwen-7b-chat-master', 'quantize')).toBe(a);
    expect(stageObjectName('promote-qwen-qwen-7b-chat-master', 'evaluate')).not.toBe(a);
  });

  it('cap long and odd workflow ids with a digest, never colliding on slug merges', () => {
    const long = stageObjectName(`UI Started/${'x'.repeat(200)}`, 'quantize');
    expect(long.length).toBeLessThanOrEqual(63);
    expect(isDnsLabel(long)).toBe(true);
    expect(dnsName(['a-b', 'c'])).not.toBe(dnsName(['a', 'b-c']));
    expect(isDnsLabel(dnsName(['Qwen_7B.Chat!!', '---']))).toBe(true);
  });
});
