import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';

// The embedding server's capacity, measured once by a saturating closed-loop probe: at
// each concurrency level `c`, c loops each send a full batch, wait for the answer, and
// send the next, for a fixed time; c doubles until inputs/s stops growing (less than
// `minGrowth` more than the best level so far, `patience` times in a row). The capacity
// is the best level's inputs/s: what the server can embed when it is never idle. A run's
// achieved inputs/s over it (utilisation()) says how busy the client kept the server.
//
// The probe reads answers as bytes and does not parse them (base64 vectors by default):
// on a small host the client's own parsing would otherwise be measured, not the server.

/** Answers each closed loop must see inside a level's window for its rate to count. */
const MIN_ANSWERS = 3;

export interface CapacityProbeOptions {
  /** API root including /v1. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Texts cycled through to fill batches (representative chunks of the corpus). */
  sample: readonly string[];
  /** Inputs per request: the batch size the client sends (TEI's default limit is 32). */
  batchInputs?: number;
  startConcurrency?: number;
  maxConcurrency?: number;
  /** How long each level runs, ms (after its warm-up). */
  levelMs?: number;
  /** Unmeasured time at the start of each level, ms. */
  warmupMs?: number;
  /** A level counts as growth when it beats the best so far by more than this share. */
  minGrowth?: number;
  /** Levels without growth before the probe stops. */
  patience?: number;
  encodingFormat?: 'float' | 'base64';
  timeoutMs?: number;
}

export interface CapacityLevel {
  concurrency: number;
  inputsPerSecond: number;
  requests: number;
  meanLatencyMs: number;
  errors: number;
}

export interface EmbeddingCapacity {
  /** The best level's inputs/s. */
  inputsPerSecond: number;
  /** The concurrency at which it was reached. */
  concurrency: number;
  batchInputs: number;
  /** True when throughput stopped growing before maxConcurrency (the server saturated). */
  saturated: boolean;
  levels: CapacityLevel[];
}

/** Achieved / capacity, the utilisation figure (0 when there is no capacity). */
export function utilisation(
  achievedInputsPerSecond: number,
  capacity: Pick<EmbeddingCapacity, 'inputsPerSecond'>,
) {
  return capacity.inputsPerSecond > 0 ? achievedInputsPerSecond / capacity.inputsPerSecond : 0;
}

export async function measureEmbeddingCapacity(options: CapacityProbeOptions): Promise<EmbeddingCapacity> {
  if (options.sample.length === 0) throw new Error('measureEmbeddingCapacity: an empty sample');
  const batchInputs = options.batchInputs ?? 32;
  const maxConcurrency = options.maxConcurrency ?? 64;
  const levelMs = options.levelMs ?? 2_000;
  const warmupMs = options.warmupMs ?? 300;
  const minGrowth = options.minGrowth ?? 0.05;
  const patience = options.patience ?? 1;
  const url = `${options.baseUrl.replace(/\/+$/, '')}/embeddings`;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const bodies = Array.from({ length: Math.min(16, options.sample.length) }, (_, k) =>
    JSON.stringify({
      model: options.model,
      input: Array.from(
        { length: batchInputs },
        (_, i) => options.sample[(k * batchInputs + i) % options.sample.length] as string,
      ),
      encoding_format: options.encodingFormat ?? 'base64',
    }),
  );
  const dispatcher = new Agent({ connections: maxConcurrency, keepAliveTimeout: 10_000 });
  const levels: CapacityLevel[] = [];
  let best: CapacityLevel | undefined;
  let flat = 0;
  let saturated = false;
  try {
    for (let c = Math.max(1, options.startConcurrency ?? 1); c <= maxConcurrency; c *= 2) {
      const level = await runLevel(c);
      levels.push(level);
      if (level.requests === 0) throw new Error(`capacity probe: no request to ${url} succeeded`);
      if (!best || level.inputsPerSecond > best.inputsPerSecond * (1 + minGrowth)) {
        best = level;
        flat = 0;
      } else {
        if (level.inputsPerSecond > best.inputsPerSecond) best = level;
        if (++flat >= patience) {
          saturated = true;
          break;
        }
      }
    }
  } finally {
    await dispatcher.close();
  }
  const top = best as CapacityLevel;
  return {
    inputsPerSecond: top.inputsPerSecond,
    concurrency: top.concurrency,
    batchInputs,
    saturated,
    levels,
  };

  async function runLevel(concurrency: number): Promise<CapacityLevel> {
    const start = performance.now();
    const measureFrom = start + warmupMs;
    const end = measureFrom + levelMs;
    // A level runs at least levelMs after its warm-up, and on until every loop has seen
    // MIN_ANSWERS answers inside it (slow or deeply queued levels), at most 4 x levelMs.
    const hardEnd = measureFrom + 4 * levelMs;
    let requests = 0;
    let errors = 0;
    let latency = 0;
    let next = 0;
    const loop = async (): Promise<number> => {
      // This loop's answers inside the window: first and last time, how many.
      let first = 0;
      let last = 0;
      let answers = 0;
      for (;;) {
        const now = performance.now();
        if (now >= hardEnd || (now >= end && answers >= MIN_ANSWERS)) break;
        const body = bodies[next++ % bodies.length] as string;
        const sent = now;
        let ok = false;
        try {
          const response = await request(url, {
            method: 'POST',
            headers,
            body,
            dispatcher,
            headersTimeout: options.timeoutMs ?? 60_000,
            bodyTimeout: options.timeoutMs ?? 60_000,
          });
          await response.body.arrayBuffer();
          ok = response.statusCode === 200;
        } catch {
          ok = false;
        }
        const answered = performance.now();
        if (answered >= measureFrom) {
          if (ok) {
            requests++;
            latency += answered - sent;
            if (answers === 0) first = answered;
            last = answered;
            answers++;
          } else errors++;
        }
        if (!ok) await new Promise((r) => setTimeout(r, 50));
      }
      // A closed loop's own rate: the answers after its first one in the window over the
      // time they took. Summed over the loops this is the server's rate, without the
      // edge effects of counting answers in a fixed window (a server whose slots finish in
      // step answers in bursts, and a window holds one burst more or less).
      return answers >= 2 && last > first ? ((answers - 1) * batchInputs * 1000) / (last - first) : 0;
    };
    const rates = await Promise.all(Array.from({ length: concurrency }, loop));
    return {
      concurrency,
      inputsPerSecond: rates.reduce((a, b) => a + b, 0),
      requests,
      meanLatencyMs: requests > 0 ? latency / requests : 0,
      errors,
    };
  }
}
