// Incremental parser of a text/event-stream body (WHATWG server-sent events), robust to
// what real networks do: events and even line endings ("\r\n") or UTF-8 sequences split
// across reads, comment lines (":" keep-alives), multi-line data fields. Returns each
// event's data; other fields (event, id, retry) are not used by OpenAI streams.

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private data: string[] = [];

  /** Feeds one read; returns the data of every event completed by it. */
  push(chunk: Uint8Array | string): string[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    return this.drain(false);
  }

  /** End of stream: an event not terminated by a blank line is dropped, as the spec says. */
  end(): string[] {
    this.buffer += this.decoder.decode();
    const events = this.drain(true);
    this.data = [];
    return events;
  }

  private drain(final: boolean): string[] {
    const events: string[] = [];
    let start = 0;
    const buffer = this.buffer;
    for (;;) {
      let i = start;
      while (i < buffer.length && buffer.charCodeAt(i) !== 10 && buffer.charCodeAt(i) !== 13) i++;
      if (i >= buffer.length) break;
      // A "\r" at the very end may be the first half of "\r\n": wait for the next read.
      if (buffer.charCodeAt(i) === 13 && i + 1 === buffer.length && !final) break;
      const line = buffer.slice(start, i);
      start = buffer.charCodeAt(i) === 13 && buffer.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
      this.line(line, events);
    }
    this.buffer = start === 0 ? buffer : buffer.slice(start);
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) {
        events.push(this.data.join('\n'));
        this.data = [];
      }
      return;
    }
    if (line.charCodeAt(0) === 58 /* ":" comment */) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    this.data.push(value);
  }
}
