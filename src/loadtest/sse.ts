import { createParser, type EventSourceParser } from 'eventsource-parser';

// Server-sent events from raw response bytes. Bytes arrive in arbitrary pieces: a read can
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
  /** A line that is not SSE (e.g. raw JSON or HTML): the stream is malformed. */
  onMalformed(problem: string): void;
}

/** Lines of more than this many characters without an end mean the peer is not speaking SSE. */
const MAX_BUFFERED_CHARS = 8 * 1024 * 1024;

export class SseDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private readonly parser: EventSourceParser;
  private failed = false;

  constructor(callbacks: SseCallbacks) {
    this.parser = createParser({
      maxBufferSize: MAX_BUFFERED_CHARS,
      onEvent: (event) => {
        if (!this.failed) callbacks.onData(event.data);
      },
      onComment: (comment) => callbacks.onComment?.(comment),
      onError: (error) => {
        if (this.failed) return;
        this.failed = true;
        const line = error.line ?? error.field ?? '';
        callbacks.onMalformed(
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

  push(bytes: Uint8Array): void {
    if (this.failed) return;
    const text = this.decoder.decode(bytes, { stream: true });
    if (text.length > 0) this.parser.feed(text);
  }

  /** End of the body: flushes a trailing partial character. An unterminated event is dropped, per spec. */
  end(): void {
    if (this.failed) return;
    const rest = this.decoder.decode();
    if (rest.length > 0) this.parser.feed(rest);
  }
}
