import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { approveUpdate } from '../../workflows/definitions.js';
import { SandboxClusterBackend } from '../cluster/sandbox/backend.js';
import { loadConfig } from '../config/config.js';
import { type PromotionSpecInput, parsePromotionSpec } from '../domain/promotion-spec.js';
import type { PipelineStatus } from '../domain/status.js';
import { writeFixtureModel } from '../hub/fixture-model.js';
import { demoKnowledgeBase } from './demo-knowledge.js';
import { startEmbeddedStack } from './embedded-stack.js';
import { type Conclusion, conclude, follow, startPromotion } from './pipelines.js';
import { renderTimeline } from './render.js';

// `make demo`: the main job on the embedded stack, end to end. Promotion 1 takes
// qwen/Qwen-7B-Chat through every stage to production, passing its approval gates with the
// same update the UI and CLI send. Promotion 2 ships a revision whose canary carries an
// injected latency fault (QWENOPS_SIM_EXTRA_LATENCY_MS on the revision's env): its analysis
// fails and it rolls back on its own.

export interface DemoOptions {
  stateDir: string;
  keepRunning: boolean;
  temporalPort: number;
  uiPort: number;
  sandboxPort: number;
  metricsPort: number;
  databasePort: number;
}

const MODEL = 'qwen/Qwen-7B-Chat';

function log(line: string): void {
  process.stdout.write(`[demo] ${line}\n`);
}

/** Short, demo-sized timings; everything else is the production default. */
function demoSpec(overrides: Partial<PromotionSpecInput>): PromotionSpecInput {
  return {
    model: MODEL,
    hub: { provider: 'local', revision: 'master' },
    requestedBy: 'demo',
    canary: {
      steps: [10, 50, 100],
      analysisWindowSeconds: 4,
      minSamples: 12,
      probe: { requestsPerSecond: 15, maxTokens: 8, concurrency: 16 },
      // A 4 s window holds ~60 probe requests, whose p99 is nearly their maximum: one slow
      // request on a busy laptop is not a regression. (Production windows are 60 s.)
      slo: { p99LatencyMs: 300, maxErrorRatePct: 1, maxLatencyRatioVsStable: 2 },
    },
    loadTest: { durationSeconds: 6, requestsPerSecond: 8, maxTokens: 32 },
    execution: { heartbeatTimeoutSeconds: 15, gpuJobTimeoutSeconds: 600 },
    ...overrides,
  };
}

async function runPromotion(
  client: Client,
  title: string,
  input: PromotionSpecInput,
  workflowId: string,
): Promise<{ handle: WorkflowHandle; conclusion: Conclusion; status?: PipelineStatus }> {
  const spec = parsePromotionSpec(input);
  const handle = await startPromotion(client, spec, workflowId);
  log(`${title}: started ${workflowId}`);
  const approved = new Set<string>();
  await follow(
    handle,
    (status) => {
      log(
        `  ${status.stage.padEnd(15)} ${String(status.progress.percent).padStart(3)}%  ${status.progress.message}`,
      );
      const gate = status.pendingDecision?.gate;
      if (gate && !approved.has(gate)) {
        approved.add(gate);
        log(`  approving "${gate}" with the approveGate update (what "qwenops approve ${workflowId}" sends)`);
        void handle
          .executeUpdate(approveUpdate, { args: [{ by: 'demo', comment: 'demo approval' }] })
          .catch((err: Error) => {
            log(`  approval refused: ${err.message}`);
          });
      }
    },
    { intervalMs: 500 },
  );
  const conclusion = await conclude(handle);
  return { handle, conclusion, status: conclusion.status };
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const started = Date.now();
  log(`1/4 starting the embedded stack in ${options.stateDir}`);
  const stack = await startEmbeddedStack({
    stateDir: options.stateDir,
    temporalPort: options.temporalPort,
    uiPort: options.uiPort,
    sandboxPort: options.sandboxPort,
    metricsPort: options.metricsPort,
    databasePort: options.databasePort,
    freshCluster: true,
    log: (line) => log(`  ${line}`),
    clusterEnv: { QWENOPS_SIM_JOB_SECONDS: '2' },
  });
  let exitCode = 0;
  let connection: Connection | undefined;
  try {
    const config = loadConfig({ env: { ...process.env, ...stack.env } });
    log('2/4 seeding the local model mirror with a FIXTURE of qwen/Qwen-7B-Chat (not real weights)');
    for (const revision of ['master', 'v1.1']) await writeFixtureModel(config.hub.mirrorDir, MODEL, revision);

    connection = await Connection.connect({ address: stack.temporalAddress });
    const client = new Client({ connection });
    const runId = new Date().toISOString().replace(/[-:]/g, '').slice(0, 15).toLowerCase();

    log('3/4 promotion 1: qwen/Qwen-7B-Chat through every stage, approvals on');
    const first = await runPromotion(client, 'promotion 1', demoSpec({}), `demo-${runId}-promote`);
    log('3/4 promotion 2: revision v1.1 with an injected +450 ms latency fault on its canary');
    const second = await runPromotion(
      client,
      'promotion 2',
      demoSpec({
        hub: { provider: 'local', revision: 'v1.1' },
        approvals: { beforeCanary: false, beforePromote: true },
        serving: { env: { VLLM_ATTENTION_BACKEND: 'FLASH_ATTN', QWENOPS_SIM_EXTRA_LATENCY_MS: '450' } },
      }),
      `demo-${runId}-latency-fault`,
    );

    log('4/4 knowledge base: re-index the bundled Chinese sample, then answer one question from it');
    const service = await new SandboxClusterBackend({ url: stack.sandboxUrl }).getService({
      namespace: 'llm-prod',
      name: 'qwen-7b-chat',
      deploymentMode: 'Serverless',
    });
    const extraLines = await demoKnowledgeBase({
      client,
      config,
      databaseUrl: stack.databaseUrl,
      chatBaseUrl: service?.url ? `${service.url}/v1` : undefined,
      chatModel: 'qwen-7b-chat',
      log: (line) => log(`  ${line}`),
    });

    const summary = (label: string, r: typeof first, expected: string) => {
      const ok = r.conclusion.outcome === expected;
      if (!ok) exitCode = 1;
      const lines = [
        '',
        `${label}: ${r.handle.workflowId} -> ${r.conclusion.outcome}${r.conclusion.reason ? ` (${r.conclusion.reason})` : ''} ${ok ? '[as expected]' : `[UNEXPECTED: wanted ${expected}]`}`,
      ];
      if (r.status) {
        lines.push(renderTimeline(r.status));
        if (r.status.compensations.length > 0)
          lines.push(
            `  compensations: ${r.status.compensations.map((c) => `${c.name} ${c.state}`).join(', ')}`,
          );
        if (r.status.reportUri) lines.push(`  report: ${r.status.reportUri} (and report.md beside it)`);
      }
      return lines;
    };
    const out = [
      ...summary('promotion 1', first, 'promoted'),
      ...summary('promotion 2', second, 'rolled_back'),
      ...extraLines,
      '',
      `Temporal UI: ${stack.uiUrl}/namespaces/default/workflows`,
      `logs: ${stack.logsDir}   artifacts: ${path.join(options.stateDir, 'store')}`,
      `demo finished in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } catch (err) {
    exitCode = 1;
    log(`FAILED: ${(err as Error).message}`);
    log(`see the logs in ${stack.logsDir}`);
  } finally {
    await connection?.close().catch(() => undefined);
    if (options.keepRunning && exitCode === 0) {
      log(`the stack keeps running (Ctrl-C stops it): UI ${stack.uiUrl}`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    await stack.stop();
  }
  return exitCode;
}
