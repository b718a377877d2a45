import { pathToFileURL } from 'node:url';
import { runKnowledgeBench } from './knowledge-ingest.js';
import { runLoadgenBench } from './loadgen.js';
import { runOrchestrationBench } from './orchestration.js';
import { runServingSimulatorBench } from './serving-simulator.js';

// `make bench`: every benchmark, one `name=value` line per figure. Each figure is a ratio or
// a difference measured side by side in this run (candidate vs a baseline on this machine).

const suites: Array<[string, () => Promise<Record<string, number> | undefined>]> = [
  ['orchestration', runOrchestrationBench],
  ['loadgen', runLoadgenBench],
  ['knowledge', runKnowledgeBench],
  [
    'serving-simulator',
    async () => {
      await runServingSimulatorBench((line) => console.log(line));
      return undefined;
    },
  ],
];

export async function runAll(only?: string[]): Promise<number> {
  let failed = 0;
  for (const [name, run] of suites) {
    if (only && only.length > 0 && !only.includes(name)) continue;
    const t0 = Date.now();
    console.error(`[bench] ${name}: start`);
    try {
      const figures = await run();
      if (figures) for (const [key, value] of Object.entries(figures)) console.log(`${key}=${value}`);
      console.error(`[bench] ${name}: done in ${((Date.now() - t0) / 1000).toFixed(0)}s`);
    } catch (err) {
      failed++;
      console.error(`[bench] ${name}: FAILED: ${(err as Error).stack ?? err}`);
    }
  }
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runAll(process.argv.slice(2));
}
