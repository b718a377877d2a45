import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureEmbeddingCapacity } from '../../../src/knowledge/embedders/capacity.js';
import { OpenAiEmbedder } from '../../../src/knowledge/embedders/openai.js';
import { simulatorOptionsFromEnv } from '../../../src/llm/simulator/options.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// The simulator's embedding service model: at most embeddingMaxConcurrency batches in
// service, each for embeddingBatchLatencyMs + n * embeddingInputLatencyMs, so the server
// has a finite capacity (2 slots x 32 inputs / (20 + 32 * 0.5) ms = ~1,780 inputs/s here);
// TEI's batch-size limit answers 422 with TEI's body.

let sim: TestSimulator;
beforeAll(async () => {
  sim = await startSimulator({
    embeddingMaxConcurrency: 2,
    embeddingBatchLatencyMs: 20,
    embeddingInputLatencyMs: 0.5,
    embeddingMaxBatchInputs: 32,
  });
});
afterAll(async () => {
  await sim.close();
});

async function embed(inputs: string[]): Promise<Response> {
  return fetch(`${sim.baseUrl}/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'BAAI/bge-m3', input: inputs, encoding_format: 'base64' }),
  });
}

const inputs = (n: number) => Array.from({ length: n }, (_, i) => `第${i}条：制度应当按照要求办理。`);

describe('embedding service model', () => {
  it('holds a batch for a + b * inputs and serves at most `slots` batches at once', async () => {
    const t0 = performance.now();
    expect((await embed(inputs(32))).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    // Six batches on two slots: three rounds of ~36 ms.
    const t1 = performance.now();
    const answers = await Promise.all(Array.from({ length: 6 }, () => embed(inputs(32))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(3 * 35);
  });

  it("refuses a batch over the limit with TEI's 422 body, which the embedder splits", async () => {
    const response = await embed(inputs(40));
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({
      error: 'batch size 40 > maximum allowed batch size 32',
      error_type: 'Validation',
    });
    const embedder = new OpenAiEmbedder({ baseUrl: sim.baseUrl, model: 'BAAI/bge-m3', maxBatchInputs: 64 });
    expect(await embedder.embed(inputs(100))).toHaveLength(100);
    expect(embedder.limits().maxBatchInputs).toBe(32);
    await embedder.close();
  });

  it('has a capacity the saturating probe finds', async () => {
    const capacity = await measureEmbeddingCapacity({
      baseUrl: sim.baseUrl,
      model: 'BAAI/bge-m3',
      sample: inputs(8),
      levelMs: 500,
      warmupMs: 100,
      maxConcurrency: 16,
    });
    expect(capacity.saturated).toBe(true);
    expect(capacity.inputsPerSecond).toBeLessThan(1_900);
    expect(capacity.inputsPerSecond).toBeGreaterThan(900);
  }, 20_000);

  it('reads the service model from QWENOPS_SIM_* variables', () => {
    expect(
      simulatorOptionsFromEnv({
        QWENOPS_SIM_EMBEDDING_MAX_CONCURRENCY: '4',
        QWENOPS_SIM_EMBEDDING_BATCH_LATENCY_MS: '40',
        QWENOPS_SIM_EMBEDDING_INPUT_LATENCY_MS: '4',
        QWENOPS_SIM_EMBEDDING_MAX_BATCH_INPUTS: '32',
        QWENOPS_SIM_MAX_BODY_BYTES: '2000000',
      }),
    ).toEqual({
      embeddingMaxConcurrency: 4,
      embeddingBatchLatencyMs: 40,
      embeddingInputLatencyMs: 4,
      embeddingMaxBatchInputs: 32,
      maxBodyBytes: 2_000_000,
    });
  });
});
