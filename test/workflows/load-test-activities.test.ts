import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLoadTestActivities,
  type EndpointLoadTestInput,
  type EndpointLoadTestResult,
} from '../../activities/loadtest.js';
import type { CanaryAnalysisRequest } from '../../src/analysis/port.js';
import { ProbeCanaryAnalyzer } from '../../src/analysis/probe.js';
import type { AnalysisResult } from '../../src/domain/analysis.js';
import { sloSchema } from '../../src/domain/promotion-spec.js';
import { FsArtifactStore } from '../../src/storage/fs.js';
import { startSimulator, type TestSimulator } from '../support/simulator.js';

// The load-test activities as Temporal runs them (heartbeats, cancellation, failure
// mapping), in the SDK's mock activity environment against serving simulators.

let stable: TestSimulator;
let canary: TestSimulator;
let storeDir: string;
let activities: ReturnType<typeof createLoadTestActivities>;

beforeAll(async () => {
  stable = await startSimulator({ ttftMs: 20, tpotMs: 4, jitterSigma: 0.1, revision: 'stable-1' });
  canary = await startSimulator({ ttftMs: 20, tpotMs: 4, jitterSigma: 0.1, revision: 'canary-1' });
  storeDir = await mkdtemp(path.join(tmpdir(), 'qwenops-activities-'));
  activities = createLoadTestActivities({
    store: new FsArtifactStore(storeDir),
    analyzer: new ProbeCanaryAnalyzer(),
    confinement: { promptRoots: [], loadTestTargets: ['127.0.0.1'] },
  });
});

afterAll(async () => {
  await Promise.all([stable?.close(), canary?.close()]);
  if (storeDir) await rm(storeDir, { recursive: true, force: true });
});

const analysisRequest = (overrides: Partial<CanaryAnalysisRequest> = {}): CanaryAnalysisRequest => ({
  step: 0,
  canaryPercent: 10,
  model: 'qwen-7b-chat',
  canary: { revision: 'canary-1', baseUrl: canary.baseUrl },
  stable: { revision: 'stable-1', baseUrl: stable.baseUrl },
  windowSeconds: 2,
  minSamples: 20,
  probe: { requestsPerSecond: 20, maxTokens: 8, concurrency: 32 },
  slo: sloSchema.parse({ p99LatencyMs: 2000 }),
  ...overrides,
});

describe('analyseCanaryEndpoints', () => {
  it('analyses canary against stable and heartbeats its progress', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result: AnalysisResult = await env.run(activities.analyseCanaryEndpoints, analysisRequest());
    expect(result.verdict, result.reasons.join('\n')).toBe('pass');
    expect(result.canary?.revision).toBe('canary-1');
    expect(beats.some((b) => /step 0: canary \d+ sent/.test((b as { progress: string }).progress))).toBe(
      true,
    );
  });

  it('turns bad input into a non-retryable InvalidInput failure', async () => {
    const env = new MockActivityEnvironment();
    const err = await env
      .run(activities.analyseCanaryEndpoints, analysisRequest({ minSamples: 0 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as Error).message).toMatch(/minSamples: must be >= 1/);
  });

  it('refuses endpoints outside the load-test target allowlist before sending anything', async () => {
    const env = new MockActivityEnvironment();
    const before = canary.stats().requests.total;
    const err = await env
      .run(
        activities.analyseCanaryEndpoints,
        analysisRequest({ stable: { revision: 'stable-1', baseUrl: 'http://169.254.169.254/latest' } }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as Error).message).toMatch(
      /stable\.baseUrl: "http:\/\/169\.254\.169\.254\/latest" is not an allowed load-test target/,
    );
    expect(canary.stats().requests.total).toBe(before);
  });

  it('stops measuring when cancelled', async () => {
    const env = new MockActivityEnvironment();
    setTimeout(() => env.cancel(), 500);
    const err = await env
      .run(activities.analyseCanaryEndpoints, analysisRequest({ windowSeconds: 60 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('runEndpointLoadTest', () => {
  it('stores the report and reports the verdict', async () => {
    const env = new MockActivityEnvironment();
    const input: EndpointLoadTestInput = {
      request: {
        url: stable.baseUrl,
        mode: 'closed',
        concurrency: 2,
        maxRequests: 10,
        maxTokens: 4,
        slo: { maxErrorRatePct: 0 },
      },
      reportPrefix: 'runs/activity-test/load-test',
      reportId: 'activity-test',
    };
    const result: EndpointLoadTestResult = await env.run(activities.runEndpointLoadTest, input);
    expect(result.passed).toBe(true);
    expect(result.reportJsonUri).toMatch(/runs\/activity-test\/load-test\/report\.json$/);
    expect(result.summary.requests).toBe(10);
  });

  it('refuses a bad report prefix as invalid input', async () => {
    const env = new MockActivityEnvironment();
    const input: EndpointLoadTestInput = {
      request: { url: stable.baseUrl, mode: 'closed', maxRequests: 1 },
      reportPrefix: '../escape',
    };
    const err = await env.run(activities.runEndpointLoadTest, input).catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('InvalidInput');
    expect((err as Error).message).toMatch(/reportPrefix: .*must not contain "\." or "\.\." segments/);
  });
});
