import { describe, expect, it } from 'vitest';
import { SmoothWeightedRoundRobin } from '../../../src/cluster/sandbox/weighted-round-robin.js';

function picks(weights: Record<string, number>, n: number): Record<string, number> {
  const rr = new SmoothWeightedRoundRobin(
    Object.entries(weights).map(([item, weight]) => ({ item, weight })),
  );
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const item = rr.next() as string;
    counts[item] = (counts[item] ?? 0) + 1;
  }
  return counts;
}

describe('SmoothWeightedRoundRobin', () => {
  it.each([1, 5, 10, 25, 33, 50, 90, 99])(
    'gives exactly %i of every 100 picks to a canary at that percent',
    (percent) => {
      expect(picks({ stable: 100 - percent, canary: percent }, 100)).toEqual({
        stable: 100 - percent,
        canary: percent,
      });
      expect(picks({ stable: 100 - percent, canary: percent }, 300).canary).toBe(3 * percent);
    },
  );

  it('spreads the canary evenly (no burst of canary requests at the start)', () => {
    const rr = new SmoothWeightedRoundRobin([
      { item: 'stable', weight: 90 },
      { item: 'canary', weight: 10 },
    ]);
    const sequence = Array.from({ length: 100 }, () => rr.next());
    const positions = sequence.flatMap((item, i) => (item === 'canary' ? [i] : []));
    for (let i = 1; i < positions.length; i++)
      expect((positions[i] as number) - (positions[i - 1] as number)).toBe(10);
  });

  it('leaves zero weights out, restarts the cycle on new weights, and has no pick when empty', () => {
    expect(picks({ stable: 100, canary: 0 }, 50)).toEqual({ stable: 50 });
    const rr = new SmoothWeightedRoundRobin<string>([]);
    expect(rr.next()).toBeUndefined();
    rr.setWeights([
      { item: 'a', weight: 1 },
      { item: 'b', weight: 3 },
    ]);
    const four = Array.from({ length: 4 }, () => rr.next()).sort();
    expect(four).toEqual(['a', 'b', 'b', 'b']);
    expect(() => rr.setWeights([{ item: 'a', weight: 1.5 }])).toThrow(/whole number/);
  });
});
