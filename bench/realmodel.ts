import { pathToFileURL } from 'node:url';
import { startPromotion } from '../src/cli/pipeline-client.js';
import type { ServiceView } from '../src/cluster/sandbox/api.js';
import { readTokenFile } from '../src/cluster/sandbox/auth.js';
import { SandboxClusterBackend } from '../src/cluster/sandbox/backend.js';
import type { EvaluationResult, QuantizeResult } from '../src/domain/job-results.js';
import { parsePromotionSpec } from '../src/domain/promotion-spec.js';
import { buildRevisionSpec } from '../src/domain/serving-revision.js';
import {
  publishModelDirectory,
  TINY_MODEL_ID,
  TINY_MODEL_QUALITY_GATES,
  tinyModelDir,
  tinyModelServing,
} from '../src/hub/tiny-model.js';
import { runLoadTest } from '../src/loadtest/runner.js';
import { createArtifactStore } from '../src/storage/index.js';
import { startBenchStack } from './stack.js';

// The real model path on this machine's CPU, one promotion of the tiny Qwen2 model on the
// sandbox's vllm engine, and the figures the processes measured themselves:
//   awq_quantize_s           the quantize Job's own duration (llm-compressor AWQ, CPU)
//   awq_size_ratio           candidate bytes / baseline bytes (the model's files)
//   awq_ppl_ratio            candidate / baseline perplexity on the held-out set
//   vllm_ready_s             a vLLM server's start to first healthy answer (model copy included)
//   vllm_decode_tok_s_awq_vs_bf16  output tokens/s of the AWQ revision over the bf16 one,
//                            same closed-loop load, one after the other, in this run
//   realmodel_promotion_s    the whole promotion, client start to result
//   realmodel_overhead_ratio promotion wall time / (quantize + evaluate Job durations +
//                            both servers' start-up): what orchestration, download, canary
//                            analysis and load test add around the unavoidable work

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

async function serviceView(
  sandbox: { url: string; tokenFile: string },
  namespace: string,
  name: string,
): Promise<ServiceView> {
  const response = await fetch(
    `${sandbox.url}/apis/serving.kserve.io/v1beta1/namespaces/${namespace}/inferenceservices/${name}`,
    { headers: { authorization: `Bearer ${readTokenFile(sandbox.tokenFile) ?? ''}` } },
  );
  if (!response.ok) throw new Error(`service ${namespace}/${name}: ${response.status}`);
  return (await response.json()) as ServiceView;
}

async function decodeTokensPerSecond(url: string, model: string): Promise<number> {
  const report = await runLoadTest({
    url,
    model,
    mode: 'closed',
    concurrency: 1,
    durationSeconds: 15,
    warmupSeconds: 3,
    maxTokens: 64,
    ignoreEos: true,
    stream: true,
  });
  return report.results.throughput.outputTokensPerSecond;
}

export async function runRealModelBench(): Promise<Record<string, number>> {
  const stack = await startBenchStack('realmodel', { sandboxEnv: { QWENOPS_ENGINE: 'vllm' } });
  const { env, config } = stack;
  const sandbox = { url: stack.sandboxUrl, tokenFile: config.cluster.sandboxTokenFile };
  await publishModelDirectory(config.hub.mirrorDir, TINY_MODEL_ID, 'master', tinyModelDir());
  const backend = new SandboxClusterBackend(sandbox);
  try {
    const spec = parsePromotionSpec({
      model: TINY_MODEL_ID,
      hub: { provider: 'local', revision: 'master' },
      quantization: { method: 'awq', bits: 4, groupSize: 128, calibrationSamples: 32 },
      qualityGates: { ...TINY_MODEL_QUALITY_GATES },
      serving: tinyModelServing('bench-tiny', 2048),
      approvals: { beforeCanary: false, beforePromote: false },
      canary: {
        steps: [100],
        analysisWindowSeconds: 8,
        minSamples: 6,
        probe: { requestsPerSecond: 2, maxTokens: 8, concurrency: 4, ignoreEos: true },
        slo: { p99LatencyMs: 10_000, maxLatencyRatioVsStable: 20, maxErrorRatePct: 5 },
      },
      loadTest: { enabled: false },
      execution: { heartbeatTimeoutSeconds: 60, gpuJobTimeoutSeconds: 900 },
    });
    const t0 = performance.now();
    const handle = await startPromotion(env.client, spec, 'bench-realmodel');
    const result = (await handle.result()) as { status: { reportUri?: string } };
    const promotionSeconds = (performance.now() - t0) / 1000;

    const store = await createArtifactStore(config.store);
    const report = await store.getJson<{ quantization: QuantizeResult; evaluation: EvaluationResult }>(
      store.keyFromUri(result.status.reportUri as string),
    );
    const { quantization, evaluation } = report;
    const promoted = await serviceView(sandbox, spec.serving.namespace, spec.serving.name);
    // The bf16 baseline started first (bootstrapped stable, now replaced: in the history), the
    // AWQ canary second (live now); each with the start-up its own revision measured.
    const awqRevision = promoted.revisions[0];
    const baselineReady = promoted.history.find((h) => h.outcome === 'replaced')?.readySeconds ?? Number.NaN;
    // Serve the bf16 baseline again beside it, so both decode under the same load, in turn.
    const baselineRef = {
      namespace: spec.serving.namespace,
      name: 'bench-tiny-bf16',
      deploymentMode: 'Serverless' as const,
    };
    await backend.deployService(
      baselineRef,
      buildRevisionSpec(spec.serving, evaluation.baseline.modelUri, { quantized: false, labels: {} }),
    );
    await backend.waitForTraffic(baselineRef, undefined, { deadline: Date.now() + 300_000 });
    const baselineView = await serviceView(sandbox, baselineRef.namespace, baselineRef.name);
    const bf16Revision = baselineView.revisions[0];
    const awqTokS = await decodeTokensPerSecond(awqRevision?.url as string, spec.serving.name);
    const bf16TokS = await decodeTokensPerSecond(bf16Revision?.url as string, spec.serving.name);

    const readyAwq = awqRevision?.readySeconds ?? Number.NaN;
    const measuredWork = quantization.durationSeconds + evaluation.durationSeconds + readyAwq + baselineReady;
    return {
      awq_quantize_s: round(quantization.durationSeconds, 1),
      awq_size_ratio: round(quantization.sizeBytes / quantization.originalSizeBytes),
      awq_ppl_ratio: round(
        (evaluation.candidate.perplexity?.value ?? Number.NaN) /
          (evaluation.baseline.perplexity?.value ?? Number.NaN),
        4,
      ),
      vllm_ready_s: round(readyAwq, 1),
      vllm_ready_bf16_s: round(baselineReady, 1),
      vllm_decode_tok_s_awq_vs_bf16: round(awqTokS / bf16TokS),
      vllm_decode_tok_s_bf16: round(bf16TokS, 1),
      realmodel_promotion_s: round(promotionSeconds, 1),
      realmodel_overhead_ratio: round(promotionSeconds / measuredWork),
    };
  } finally {
    await backend.close();
    await stack.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await runRealModelBench();
  for (const [name, value] of Object.entries(figures)) console.log(`${name}=${value}`);
}
