// Aho–Corasick multi-pattern matching: one pass over the text whatever the number of
// patterns, O(text + patterns + matches). Goto transitions are kept per state in a Map of
// UTF-16 code units; failure links are computed breadth-first; each state keeps the
// patterns that end there through its output link chain.

export interface PatternMatch {
  /** Index of the pattern in the array given to the constructor. */
  pattern: number;
  /** [start, end) in UTF-16 code units of the scanned text. */
  start: number;
  end: number;
}

export class AhoCorasick {
  private readonly next: Array<Map<number, number>> = [new Map()];
  private readonly fail: number[] = [0];
  /** Pattern ending exactly at this state, or -1. */
  private readonly terminal: number[] = [-1];
  /** Nearest state on the failure chain (excluding self) that is terminal, or -1. */
  private readonly outputLink: number[] = [-1];
  private readonly lengths: number[];
  /** Work done by the last scan (transitions followed), for tests of linearity. */
  steps = 0;

  constructor(patterns: readonly string[]) {
    this.lengths = patterns.map((p) => p.length);
    patterns.forEach((pattern, index) => {
      if (pattern.length === 0) throw new Error(`pattern ${index} is empty`);
      let state = 0;
      for (let i = 0; i < pattern.length; i++) {
        const code = pattern.charCodeAt(i);
        let to = this.next[state]?.get(code);
        if (to === undefined) {
          to = this.next.length;
          this.next.push(new Map());
          this.fail.push(0);
          this.terminal.push(-1);
          this.outputLink.push(-1);
          this.next[state]?.set(code, to);
        }
        state = to;
      }
      if (this.terminal[state] === -1) this.terminal[state] = index;
    });
    const queue: number[] = [];
    for (const child of this.next[0]?.values() ?? []) queue.push(child);
    for (let head = 0; head < queue.length; head++) {
      const state = queue[head] as number;
      for (const [code, child] of this.next[state] ?? []) {
        let f = this.fail[state] as number;
        while (f !== 0 && !this.next[f]?.has(code)) f = this.fail[f] as number;
        const target = this.next[f]?.get(code);
        const failTo = target !== undefined && target !== child ? target : 0;
        this.fail[child] = failTo;
        this.outputLink[child] = this.terminal[failTo] !== -1 ? failTo : (this.outputLink[failTo] as number);
        queue.push(child);
      }
    }
  }

  /** Every occurrence of every pattern (overlapping ones included), in order of their end. */
  *scan(text: string): Generator<PatternMatch> {
    this.steps = 0;
    let state = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      let to = this.next[state]?.get(code);
      while (to === undefined && state !== 0) {
        this.steps++;
        state = this.fail[state] as number;
        to = this.next[state]?.get(code);
      }
      this.steps++;
      state = to ?? 0;
      let out = this.terminal[state] !== -1 ? state : (this.outputLink[state] as number);
      while (out !== -1) {
        const pattern = this.terminal[out] as number;
        const length = this.lengths[pattern] as number;
        yield { pattern, start: i + 1 - length, end: i + 1 };
        out = this.outputLink[out] as number;
      }
    }
  }
}
