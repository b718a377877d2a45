import { describe, expect, it } from 'vitest';
import { labelValue, objectKeySegment } from '../../../src/domain/names.js';

describe('label values and object-key segments', () => {
  it('objectKeySegment replaces everything outside [A-Za-z0-9_.-] with _', () => {
    expect(objectKeySegment('run/2026:01 ä')).toBe('run_2026_01__');
    expect(objectKeySegment('job.create')).toBe('job.create');
  });

  it('labelValue also clips to 63 characters and trims to alphanumerics at both ends', () => {
    expect(labelValue('promote/qwen-7b:v2')).toBe('promote_qwen-7b_v2');
    expect(labelValue('--a.b_')).toBe('a.b');
    expect(labelValue(`${'x'.repeat(62)}-y`)).toBe('x'.repeat(62));
    expect(labelValue('___')).toBe('');
  });
});
