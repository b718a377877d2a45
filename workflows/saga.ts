// Saga compensation: each stage that leaves something behind registers how to undo it;
// on failure, abort or rejection they run newest first, in a non-cancellable scope (an
// abort must not also cancel the clean-up), and one failing compensation does not stop
// the others.

import { CancellationScope, log } from '@temporalio/workflow';
import type { CompensationRecord } from '../src/domain/status.js';

export interface Compensation {
  name: string;
  run: () => Promise<unknown>;
}

export class Saga {
  private readonly steps: Compensation[] = [];

  add(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  /** Drops compensations once their effect is final (e.g. after promotion). */
  forget(name: string): void {
    const i = this.steps.findIndex((s) => s.name === name);
    if (i >= 0) this.steps.splice(i, 1);
  }

  get names(): string[] {
    return this.steps.map((s) => s.name);
  }

  async compensate(onRecord: (record: CompensationRecord) => void): Promise<void> {
    const steps = this.steps.splice(0).reverse();
    await CancellationScope.nonCancellable(async () => {
      for (const step of steps) {
        try {
          await step.run();
          onRecord({ name: step.name, state: 'succeeded' });
        } catch (err) {
          const message =
            err instanceof Error
              ? err.cause instanceof Error
                ? err.cause.message
                : err.message
              : String(err);
          log.error('compensation failed', { compensation: step.name, error: message });
          onRecord({ name: step.name, state: 'failed', detail: message });
        }
      }
    });
  }
}
