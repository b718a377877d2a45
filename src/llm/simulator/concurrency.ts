// The engine's batch slots: at most `limit` requests decode at once, the rest wait in
// arrival order (vLLM's scheduler is FIFO by default).

interface Waiter {
  grant: () => void;
  cancelled: boolean;
}

export interface SlotTicket {
  ready: Promise<void>;
  /** Gives up a place still waiting in the queue (the client left). */
  cancel(): void;
}

export class FifoSlots {
  private active = 0;
  private queue: Array<Waiter | undefined> = [];
  private head = 0;
  private pending = 0;

  constructor(private readonly limit: number) {}

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.pending;
  }

  acquire(): SlotTicket {
    if (this.active < this.limit && this.pending === 0) {
      this.active++;
      return { ready: Promise.resolve(), cancel: () => {} };
    }
    let waiter: Waiter | undefined;
    const ready = new Promise<void>((resolve) => {
      waiter = { grant: resolve, cancelled: false };
    });
    const entry = waiter as Waiter;
    this.queue.push(entry);
    this.pending++;
    return {
      ready,
      cancel: () => {
        if (entry.cancelled) return;
        entry.cancelled = true;
        this.pending--;
      },
    };
  }

  release(): void {
    this.active--;
    while (this.active < this.limit && this.head < this.queue.length) {
      const next = this.queue[this.head];
      this.queue[this.head] = undefined;
      this.head++;
      if (!next || next.cancelled) continue;
      next.cancelled = true; // granted: a later cancel() is a no-op
      this.pending--;
      this.active++;
      next.grant();
    }
    // Compact now and then so a long run does not keep a growing array.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
