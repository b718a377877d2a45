// Server-sent event chunks in the OpenAI streaming shape, built by concatenating
// pre-escaped parts: a stream writes one per token, so this is the hot path. The simulator
// writes these; the client and the load generator read them through ./sse.ts.

import type { FinishReason, Usage } from './wire.js';

export const SSE_DONE = 'data: [DONE]\n\n';

/** Builds the chunks of one streamed answer; `kind` picks chat or text completions. */
export class SseChunkWriter {
  private readonly head: string;
  private readonly usageField: string;
  private readonly chat: boolean;

  constructor(
    kind: 'chat' | 'completion',
    id: string,
    created: number,
    model: string,
    /** OpenAI sends "usage": null on every chunk when include_usage is set. */
    includeUsage: boolean,
  ) {
    this.chat = kind === 'chat';
    const object = this.chat ? 'chat.completion.chunk' : 'text_completion';
    this.head = `data: {"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(model)},"choices":[`;
    this.usageField = includeUsage ? ',"usage":null' : '';
  }

  /** The first chat chunk: the assistant role, empty content. */
  role(): string {
    return `${this.head}{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${this.usageField}}\n\n`;
  }

  /** One token's delta; `tokenJson` is the token as a JSON string literal. */
  token(tokenJson: string): string {
    return this.chat
      ? `${this.head}{"index":0,"delta":{"content":${tokenJson}},"logprobs":null,"finish_reason":null}]${this.usageField}}\n\n`
      : `${this.head}{"index":0,"text":${tokenJson},"logprobs":null,"finish_reason":null}]${this.usageField}}\n\n`;
  }

  finish(reason: FinishReason): string {
    return this.chat
      ? `${this.head}{"index":0,"delta":{},"logprobs":null,"finish_reason":"${reason}"}]${this.usageField}}\n\n`
      : `${this.head}{"index":0,"text":"","logprobs":null,"finish_reason":"${reason}"}]${this.usageField}}\n\n`;
  }

  /** The usage-only chunk (choices empty) sent when stream_options.include_usage is true. */
  usage(usage: Usage): string {
    return `${this.head}],"usage":${JSON.stringify(usage)}}\n\n`;
  }
}
