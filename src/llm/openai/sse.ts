import { createParser, type EventSourceParser } from 'eventsource-parser';

// Server-sent events from raw response bytes: the one decoder of OpenAI streams, used by
// the OpenAI client and the load generator. Bytes arrive in arbitrary pieces: a read can
// end inside a UTF-8 character (Chinese text is 3 bytes per character), inside a line or
// between the two newlines that end an event. TextDecoder in stream mode keeps partial
// characters; eventsource-parser keeps partial lines and events and strips exactly one
// space after "data:" as the SSE spec says, so token text arrives byte-exact (a token
// " world" keeps its leading space: it lives inside the JSON string, not the SSE field).

export interface SseCallbacks {
  /** One complete event's data (multi-line data joined with "\n", as the spec says). */
  onData(data: string): void;
  /** A keep-alive or other comment line (": ping"); not an event, never a token. */
  onComment?(comment: string): void;
  /**
   * A line that is not SSE (e.g. raw JSON or HTML): the stream is malformed and later input
   * is ignored. Without this callback such lines are skipped, as the spec says of unknown
   * fields, and decoding goes on.
   */
  onMalformed?(problem: string): void;
}

/** Lines of more than this many characters without an end mean the peer is not speaking SSE. */
const MAX_BUFFERED_CHARS = 8 * 1024 * 1024;

export class SseDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private readonly parser: EventSourceParser;
  private failed = false;

  constructor(callbacks: SseCallbacks) {
    const onMalformed = callbacks.onMalformed;
    this.parser = createParser({
      maxBufferSize: MAX_BUFFERED_CHARS,
      onEvent: (event) => {
        if (!this.failed) callbacks.onData(event.data);
      },
      onComment: (comment) => callbacks.onComment?.(comment),
      onError: (error) => {
        if (this.failed) return;
        if (onMalformed === undefined && error.type !== 'max-buffer-size-exceeded') return;
        this.failed = true;
        const line = error.line ?? error.field ?? '';
        onMalformed?.(
          error.type === 'unknown-field'
            ? `not an SSE line: ${JSON.stringify(line.slice(0, 120))}`
            : `${error.type}: ${error.message}`,
        );
      },
    });
  }

  /** True once a malformed line was seen; later input is ignored. */
  get malformed(): boolean {
    return this.failed;
  }

  push(bytes: Uint8Array | string): void {
    if (this.failed) return;
    const text = typeof bytes === 'string' ? bytes : this.decoder.decode(bytes, { stream: true });
    if (text.length > 0) this.parser.feed(text);
  }

  /** End of the body: flushes a trailing partial character. An unterminated event is dropped, per spec. */
  end(): void {
    if (this.failed) return;
    const rest = this.decoder.decode();
    if (rest.length > 0) this.parser.feed(rest);
  }
}

/**
 * The same decoder, pulled rather than called back: push() and end() return the data of
 * the events each completed. Lines that are not SSE are skipped.
 */
export class SseParser {
  private events: string[] = [];
  private readonly decoder = new SseDecoder({ onData: (data) => this.events.push(data) });

  /** Feeds one read; returns the data of every event completed by it. */
  push(chunk: Uint8Array | string): string[] {
    this.decoder.push(chunk);
    return this.take();
  }

  /** End of stream: an event not terminated by a blank line is dropped, as the spec says. */
  end(): string[] {
    this.decoder.end();
    return this.take();
  }

  private take(): string[] {
    const events = this.events;
    this.events = [];
    return events;
  }
}
