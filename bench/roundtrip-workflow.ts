// A bench-only workflow (bundled separately, never registered in production): calls a
// no-op activity n times and records how long each call took in workflow time, i.e. the
// full schedule -> dispatch -> complete -> next workflow task round trip.
import { proxyActivities } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '30s' });

export async function activityRoundtrip(n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = Date.now();
    await noop();
    samples.push(Date.now() - start);
  }
  return samples;
}
