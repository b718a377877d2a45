import { lognormalAround, type Random, seededRandom, seedFromText } from '../../domain/random.js';
import type { SimulatorOptions } from './options.js';

// The latency model of one simulated request: wait for a batch slot (FIFO, ./concurrency.ts)
// -> optional stall -> TTFT (lognormal around ttftMs, + prefill per prompt token, + injected
// extra latency) -> one token per TPOT (lognormal). Times are absolute performance.now()
// deadlines measured from the request's start, so hundreds of concurrent streams do not
// drift when timers fire late. The jitter has its own seeded stream: runs are repeatable.

type TimingOptions = Pick<
  SimulatorOptions,
  'seed' | 'ttftMs' | 'tpotMs' | 'jitterSigma' | 'prefillMsPer1kTokens'
>;

export class LatencyModel {
  private readonly jitter: Random;

  constructor(private readonly options: TimingOptions) {
    this.jitter = seededRandom(seedFromText(`jitter:${options.seed}`));
  }

  /** When the first token is due, for a request that got its slot at `start`. */
  firstTokenAt(start: number, stallUntil: number, promptTokens: number, extraLatencyMs: number): number {
    const stalledUntil = Math.max(stallUntil, start);
    return (
      stalledUntil +
      lognormalAround(this.jitter, this.options.ttftMs, this.options.jitterSigma) +
      (promptTokens / 1000) * this.options.prefillMsPer1kTokens +
      extraLatencyMs
    );
  }

  /** The gap (ms) before the next output token. */
  tokenGap(): number {
    return lognormalAround(this.jitter, this.options.tpotMs, this.options.jitterSigma);
  }
}
