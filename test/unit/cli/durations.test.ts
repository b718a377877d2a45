import { describe, expect, it } from 'vitest';
import { parseDurationSeconds } from '../../../src/cli/commands/loadtest.js';
import { parseWindow } from '../../../src/cli/commands/schedule.js';
import { durationMs, durationSeconds, parseDuration } from '../../../src/cli/durations.js';

describe('duration flags', () => {
  it('loadtest: decimals, ms|s|m|h, a space before the unit, a bare number is seconds', () => {
    expect(parseDurationSeconds(' 1.5 m ')).toBe(90);
    expect(parseDurationSeconds('250ms')).toBe(0.25);
    expect(parseDurationSeconds('1.005')).toBe(1.005);
    for (const bad of ['', '1d', '.5s', '1.s', '1e3', '5 sec', '-1']) {
      expect(() => parseDurationSeconds(bad)).toThrow('must be a duration such as 500ms, 30s, 2m or 1h');
    }
  });

  it('schedule windows: whole numbers with s|m|h|d, nothing else', () => {
    expect(parseWindow('30m')).toBe(1_800_000);
    expect(parseWindow(' 1d ')).toBe(86_400_000);
    expect(parseWindow('45s')).toBe(45_000);
    for (const bad of ['30', '1.5h', '30 m', '500ms', '2w', '']) {
      expect(() => parseWindow(bad)).toThrow('must be a duration like 30m, 6h or 1d');
    }
  });

  it('converts in the unit it was written in', () => {
    const syntax = { units: ['ms', 'h'] as const, decimals: true, spaced: false, message: 'bad' };
    expect(parseDuration('2h', syntax)).toEqual({ amount: 2, unit: 'h' });
    expect(durationMs({ amount: 2, unit: 'h' })).toBe(7_200_000);
    expect(durationSeconds({ amount: 3, unit: 'ms' })).toBe(0.003);
    expect(() => parseDuration('2', syntax)).toThrow('bad');
  });
});
