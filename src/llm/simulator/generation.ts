import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import { lognormalAround, seededRandom, seedFromText } from '../../domain/random.js';
import type { FinishReason } from '../openai/wire.js';
import { type AnswerRun, sendWholeAnswer, streamAnswer } from './answers.js';
import { FifoSlots } from './concurrency.js';
import type { FaultInjector } from './faults.js';
import type { SimulatorOptions } from './options.js';
import type { ChatRequest, CompletionRequest } from './requests.js';
import type { SimulatorRecorder } from './stats.js';
import type { LatencyModel } from './timing.js';

// The simulated engine: its batch slots and KV cache, and the life of each generation
// request in it, from arrival (faults drawn, answer planned) through the queue and its
// answer to its end, whichever way it ends: finished, reset by a fault, or left by its
// client. The answer's text and length depend only on (seed, request seed, prompt).

/** A validated generation request whose prompt fits the context window. */
export interface GenerationRequest {
  kind: 'chat' | 'completion';
  request: ChatRequest | CompletionRequest;
  promptText: string;
  promptTokens: number;
  maxTokens: number;
  /** performance.now() when the request arrived. */
  arrival: number;
}

export class GenerationEngine {
  readonly slots: FifoSlots;
  private kvTokensInUse = 0;
  private requestCounter = 0;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private readonly live = new Set<() => void>();

  constructor(
    private readonly options: SimulatorOptions,
    private readonly faults: FaultInjector,
    private readonly latency: LatencyModel,
    private readonly recorder: SimulatorRecorder,
  ) {
    this.slots = new FifoSlots(options.maxConcurrency);
  }

  /** Fraction of the KV cache the running requests hold, 0..1. */
  kvCacheUsage(): number {
    return Math.min(1, this.kvTokensInUse / this.options.kvCacheTokens);
  }

  /** Ends every request in flight and drops its connection (the server is closing). */
  abortAll(): void {
    for (const abort of [...this.live]) abort();
  }

  generate(generation: GenerationRequest, res: http.ServerResponse): void {
    const { kind, request, promptText, promptTokens, maxTokens, arrival } = generation;
    if (this.faults.answered(res)) return;
    const resetMidStream = this.faults.resetsMidStream();
    const extraLatencyMs = this.faults.extraLatencyMs;

    const textRandom = seededRandom(
      seedFromText(`${this.options.seed}\u0000${request.seed ?? ''}\u0000${promptText}`),
    );
    const minTokens = Math.min(maxTokens, Math.max(1, request.min_tokens ?? 1));
    const outputTokens = request.ignore_eos
      ? maxTokens
      : Math.min(
          maxTokens,
          Math.max(minTokens, Math.round(lognormalAround(textRandom, this.options.meanOutputTokens, 0.5))),
        );
    const finishReason: FinishReason = outputTokens >= maxTokens ? 'length' : 'stop';
    const stream = request.stream === true;

    const ticket = this.slots.acquire();
    let finished = false;
    let holdsSlot = false;
    let timer: NodeJS.Timeout | undefined;
    const reserved = promptTokens + outputTokens;

    const finish = (reason: FinishReason | 'reset') => {
      if (finished) return;
      finished = true;
      this.live.delete(abort);
      if (timer) clearTimeout(timer);
      if (holdsSlot) {
        this.kvTokensInUse -= reserved;
        this.slots.release();
      } else ticket.cancel();
      this.recorder.ended(reason);
    };
    // A client that leaves (or close()) frees its slot and stops its timers.
    const abort = () => {
      if (!finished) finish('abort');
      if (!res.writableEnded) res.destroy();
    };
    this.live.add(abort);
    res.on('close', () => {
      if (!finished) finish('abort');
    });

    const run: AnswerRun = {
      kind,
      id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${this.idPrefix}${(++this.requestCounter).toString(16)}`,
      created: Math.floor(Date.now() / 1000),
      model: request.model ?? this.options.model,
      promptTokens,
      outputTokens,
      finishReason,
      includeUsage: stream && request.stream_options?.include_usage === true,
      resetMidStream,
      arrival,
      textRandom,
      res,
      ended: () => finished,
      schedule: (callback, delayMs) => {
        timer = setTimeout(() => {
          timer = undefined;
          callback();
        }, delayMs);
      },
      reset: () => finish('reset'),
      complete: (end, firstTokenAt) => {
        this.recorder.completed(promptTokens, outputTokens, end - arrival, firstTokenAt - arrival);
        finish(finishReason);
      },
    };

    void ticket.ready.then(() => {
      if (finished) {
        // The client left while queued; the slot was granted anyway, give it back.
        this.slots.release();
        return;
      }
      holdsSlot = true;
      this.kvTokensInUse += reserved;
      const start = performance.now();
      this.recorder.queued(start - arrival);
      const firstAt = this.latency.firstTokenAt(start, this.faults.stallUntil, promptTokens, extraLatencyMs);
      if (stream) streamAnswer(run, firstAt, this.latency, this.recorder);
      else sendWholeAnswer(run, firstAt, this.latency, this.recorder);
    });
  }
}
