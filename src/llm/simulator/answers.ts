import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Random } from '../../domain/random.js';
import { SSE_DONE, SseChunkWriter } from '../openai/chunk-writer.js';
import { type FinishReason, usageOf } from '../openai/wire.js';
import { SIMULATED_HEADER, sendJson } from './http-io.js';
import type { SimulatorRecorder } from './stats.js';
import type { LatencyModel } from './timing.js';
import { PUNCTUATION_START, VOCABULARY, VOCABULARY_JSON, WORD_COUNT } from './vocabulary.js';

// Writes one planned answer on the latency model's schedule, once the request holds its
// batch slot: streamed as SSE chunks, each token at its deadline, or whole at the last
// token's deadline. Records what a vLLM server would (TTFT, inter-token gaps) as it goes.

/** One generation request in flight, as the writers see it (./generation.ts owns it). */
export interface AnswerRun {
  readonly kind: 'chat' | 'completion';
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly promptTokens: number;
  readonly outputTokens: number;
  readonly finishReason: FinishReason;
  readonly includeUsage: boolean;
  /** The resetMidStreamPct fault picked this request: cut it half-way. */
  readonly resetMidStream: boolean;
  readonly arrival: number;
  /** The answer text's random stream, seeded by the prompt. */
  readonly textRandom: Random;
  readonly res: http.ServerResponse;
  /** True once the request ended: answered, reset, or its client left. */
  ended(): boolean;
  /** Runs `callback` after `delayMs`, unless the request ends first. */
  schedule(callback: () => void, delayMs: number): void;
  /** Ends the request as cut by the reset fault (the caller destroys the socket). */
  reset(): void;
  complete(end: number, firstTokenAt: number): void;
}

/** Picks the next output token: mostly words, a punctuation mark now and then, never first. */
function nextTokenIndex(random: Random, position: number): number {
  const r = random();
  if (position > 0 && r < 0.12)
    return PUNCTUATION_START + Math.floor((r / 0.12) * (VOCABULARY.length - WORD_COUNT));
  return Math.floor(random() * WORD_COUNT);
}

export function streamAnswer(
  run: AnswerRun,
  firstAt: number,
  latency: LatencyModel,
  recorder: SimulatorRecorder,
): void {
  const { res, kind, outputTokens, finishReason, includeUsage, arrival, textRandom } = run;
  const resetAfter = run.resetMidStream
    ? Math.max(1, Math.floor(outputTokens / 2))
    : Number.POSITIVE_INFINITY;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    [SIMULATED_HEADER]: 'true',
    'x-request-id': run.id,
  });
  res.flushHeaders();
  const writer = new SseChunkWriter(kind, run.id, run.created, run.model, includeUsage);
  let emitted = 0;
  let nextAt = firstAt;
  let firstWrittenAt = 0;
  let lastWrittenAt = 0;
  const tick = () => {
    if (run.ended()) return;
    const now = performance.now();
    let out = '';
    // Catch up on every token whose deadline has passed, in one write.
    while (emitted < outputTokens && nextAt <= now + 0.5) {
      if (emitted === 0) {
        out += kind === 'chat' ? writer.role() : '';
        firstWrittenAt = now;
        recorder.firstToken(now - arrival);
      } else {
        // The gap as it happened, not as planned: a late timer (busy loop, loaded
        // host) shows here as it does to the client; tokens caught up in one write
        // are 0 apart, as the client sees them.
        recorder.tokenGap(now - lastWrittenAt);
      }
      lastWrittenAt = now;
      out += writer.token(VOCABULARY_JSON[nextTokenIndex(textRandom, emitted)] as string);
      emitted++;
      if (emitted >= resetAfter) {
        run.reset();
        // Cut only once what was sent reached the socket: the client sees a partial answer.
        res.write(out, () => res.socket?.destroy());
        return;
      }
      if (emitted < outputTokens) nextAt += latency.tokenGap();
    }
    if (emitted === outputTokens) {
      out += writer.finish(finishReason);
      if (includeUsage) out += writer.usage(usageOf(run.promptTokens, outputTokens));
      out += SSE_DONE;
      res.end(out);
      run.complete(performance.now(), firstWrittenAt);
      return;
    }
    if (out) res.write(out);
    run.schedule(tick, Math.max(0, nextAt - performance.now()));
  };
  run.schedule(tick, Math.max(0, firstAt - performance.now()));
}

/** Non-streaming: the same schedule, answered once at the last token's deadline. */
export function sendWholeAnswer(
  run: AnswerRun,
  firstAt: number,
  latency: LatencyModel,
  recorder: SimulatorRecorder,
): void {
  const { res, kind, outputTokens, finishReason } = run;
  let endAt = firstAt;
  let text = '';
  const gaps: number[] = [];
  for (let i = 0; i < outputTokens; i++) {
    text += VOCABULARY[nextTokenIndex(run.textRandom, i)];
    if (i + 1 < outputTokens) {
      const gap = latency.tokenGap();
      gaps.push(gap);
      endAt += gap;
    }
  }
  run.schedule(
    () => {
      if (run.ended()) return;
      recorder.firstToken(firstAt - run.arrival);
      // Only the answer's send is observable: a late one lengthens the last gap, so the
      // gaps add up to the time actually taken from the first token to the answer.
      const late = Math.max(0, performance.now() - endAt);
      for (const [i, gap] of gaps.entries()) {
        recorder.tokenGap(gap + (i === gaps.length - 1 ? late : 0));
      }
      if (run.resetMidStream) {
        run.reset();
        res.socket?.destroy();
        return;
      }
      const choice =
        kind === 'chat'
          ? {
              index: 0,
              message: { role: 'assistant', content: text },
              logprobs: null,
              finish_reason: finishReason,
            }
          : { index: 0, text, logprobs: null, finish_reason: finishReason };
      sendJson(
        res,
        200,
        {
          id: run.id,
          object: kind === 'chat' ? 'chat.completion' : 'text_completion',
          created: run.created,
          model: run.model,
          choices: [choice],
          usage: usageOf(run.promptTokens, outputTokens),
        },
        { 'x-request-id': run.id },
      );
      run.complete(performance.now(), firstAt);
    },
    Math.max(0, endAt - performance.now()),
  );
}
