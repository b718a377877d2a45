import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type {
  AnalyseStepInput,
  LoadTestOutcome,
  PromotionActivities,
  SafetyActivities,
  ServingActivities,
  ShiftTrafficInput,
} from '../../activities/contracts.js';
import { type SpecActivities, specActivities } from '../../activities/spec.js';
import type { AnalysisResult, Verdict } from '../../src/domain/analysis.js';
import type { EvaluationResult, QuantizeResult } from '../../src/domain/job-results.js';
import { emptySetTally, evaluateSafetyGate } from '../../src/domain/safety-gate.js';
import type { ServingStatus } from '../../src/domain/serving-revision.js';

// Scripted activity implementations for workflow tests on the time-skipping server. They
// record every call in order so tests can assert what ran (and in which order the saga
// compensated), and they keep a tiny model of the service's traffic split.

export interface FakeOptions {
  /** Verdict per analysis call, in order; missing entries pass. */
  verdicts?: Verdict[];
  qualityDropPct?: number;
  /** The evaluation's paired quality interval [estimate, low, high] in %, as a real Job reports it. */
  qualityInterval?: [number, number, number];
  /** resolveModel throws a retryable error this many times first. */
  resolveFailures?: number;
  loadTestPassed?: boolean;
  /** Makes analyseCanaryStep wait (heartbeating) until release() or cancellation. */
  blockAnalysis?: boolean;
  serviceExists?: boolean;
  claimHolder?: string;
  /**
   * Calls (as recorded, e.g. "promoteCanary", "shiftCanaryTraffic:25", "runLoadTest") that
   * wait, heartbeating, until releaseCall(call) or cancellation. A blocked change is applied
   * before the wait, like a real activity that changed the cluster and waits for it to settle.
   */
  block?: string[];
  /** holdServingTarget fails with ServingLeaseLost after this many ms (another workflow took it). */
  leaseLostAfterMs?: number;
  /** promoteCanary applies the promotion, then fails (as when waiting for readiness times out). */
  promoteFailsAfterApply?: boolean;
  /** The safety gate's refusals, [refused, prompts] per set; default 40/40 and 0/40 (passes). */
  safety?: { shouldRefuse: [number, number]; normal: [number, number] };
}

export class FakeActivities {
  readonly calls: string[] = [];
  readonly attempts: Record<string, number> = {};
  analysisCancelled = false;
  private analysisCount = 0;
  private canaryPercent?: number;
  private stableRevision = 'svc-predictor-00001';
  private canaryRevision?: string;
  private stableStorageUri = 'file:///store/models/qwen/Qwen-7B-Chat/master/original';
  private canaryStorageUri?: string;
  private revisionCounter = 1;
  private exists: boolean;
  private releaseAnalysis?: () => void;
  private analysisStartedResolvers: Array<() => void> = [];
  private readonly blocked = new Map<string, { started: Deferred; released: Deferred }>();
  /** What the last writePromotionReport call was given. */
  lastReport?: Parameters<PromotionActivities['writePromotionReport']>[0];
  /** Blocked calls that ended by cancellation. */
  readonly cancelledCalls: string[] = [];

  constructor(readonly options: FakeOptions = {}) {
    this.exists = options.serviceExists ?? true;
  }

  safety(): SafetyActivities {
    return {
      serveValidationCandidate: async (input) => {
        this.record('serveValidationCandidate');
        const name = `${input.workflowId}-safety`.slice(0, 40);
        return {
          ref: { namespace: 'llm-validation', name, deploymentMode: input.deploymentMode },
          baseUrl: `http://${name}.llm-validation/openai/v1`,
          revision: `${name}-predictor-00001`,
        };
      },
      runSafetyGate: async (input) => {
        this.record('runSafetyGate');
        const rates = this.options.safety ?? { shouldRefuse: [40, 40], normal: [0, 40] };
        const tally = { shouldRefuse: emptySetTally(), normal: emptySetTally() };
        for (const set of ['shouldRefuse', 'normal'] as const) {
          const [refused, prompts] = rates[set];
          tally[set] = {
            ...tally[set],
            prompts,
            refused,
            byStage: { ...tally[set].byStage, 'input-filter': refused },
          };
        }
        const verdict = evaluateSafetyGate(tally, input.policy);
        return {
          passed: verdict.passed,
          verdict,
          tally,
          promptSet: { name: input.policy.promptSet, version: 'fake' },
          guard: 'lexicon@fake',
          resultUri: `file:///store/runs/${input.workflowId}/safety-gate.json`,
          servedBy: input.servedBy,
        };
      },
      removeValidationCandidate: async () => {
        this.record('removeValidationCandidate');
        return true;
      },
    };
  }

  /** Resolves when an analysis is in progress (blockAnalysis mode). */
  analysisStarted(): Promise<void> {
    return new Promise((resolve) => this.analysisStartedResolvers.push(resolve));
  }

  release(): void {
    this.releaseAnalysis?.();
  }

  private gate(call: string): { started: Deferred; released: Deferred } {
    let gate = this.blocked.get(call);
    if (!gate) {
      gate = { started: deferred(), released: deferred() };
      this.blocked.set(call, gate);
    }
    return gate;
  }

  /** Resolves when a blocked call (see FakeOptions.block) is in progress. */
  callStarted(call: string): Promise<void> {
    return this.gate(call).started.promise;
  }

  releaseCall(call: string): void {
    this.gate(call).released.resolve();
  }

  /** Waits, heartbeating, while `call` is blocked; rethrows a cancellation. */
  private async waitIfBlocked(call: string): Promise<void> {
    if (!this.options.block?.includes(call)) return;
    const gate = this.gate(call);
    gate.started.resolve();
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), 100);
    try {
      await Promise.race([gate.released.promise, ctx.cancelled]);
    } catch (err) {
      // Like a real activity, stopping takes a moment (it undoes or settles what it started);
      // a workflow that does not wait for it would run its compensations meanwhile.
      await new Promise((r) => setTimeout(r, 1000));
      this.cancelledCalls.push(call);
      this.record('cancelled', call);
      throw err;
    } finally {
      clearInterval(beat);
    }
  }

  private record(name: string, detail?: string | number): void {
    this.calls.push(detail === undefined ? name : `${name}:${detail}`);
  }

  private status(): ServingStatus {
    const traffic: ServingStatus['traffic'] = [
      {
        revision: this.stableRevision,
        percent: 100 - (this.canaryPercent ?? 0),
        tag: 'prev',
        url: 'http://stable',
      },
    ];
    if (this.canaryRevision) {
      traffic.push({
        revision: this.canaryRevision,
        percent: this.canaryPercent ?? 0,
        tag: 'latest',
        url: 'http://canary',
      });
    }
    return {
      namespace: 'llm-prod',
      name: 'svc',
      ready: true,
      conditions: [{ type: 'Ready', status: 'True' }],
      url: 'http://svc',
      traffic,
      canaryPercent: this.canaryRevision ? this.canaryPercent : undefined,
      stableStorageUri: this.stableStorageUri,
      canaryStorageUri: this.canaryRevision ? this.canaryStorageUri : undefined,
      latestRolledoutRevision: this.stableRevision,
      latestCreatedRevision: this.canaryRevision ?? this.stableRevision,
    };
  }

  promotion(): PromotionActivities {
    return {
      resolveModel: async (input) => {
        const attempt = Context.current().info.attempt;
        this.attempts.resolveModel = attempt;
        this.record('resolveModel');
        if (attempt <= (this.options.resolveFailures ?? 0))
          throw new Error(`hub unavailable (attempt ${attempt})`);
        return {
          model: input.model,
          revision: input.revision,
          commit: 'abc123',
          fileCount: 9,
          totalBytes: 15_400_000_000,
          needsTrustRemoteCode: true,
        };
      },
      downloadModel: async () => {
        this.record('downloadModel');
        return {
          uri: 'file:///store/models/qwen/Qwen-7B-Chat/master/original',
          fileCount: 9,
          totalBytes: 15_400_000_000,
          reused: false,
        };
      },
      quantizeModelAwq: async (input) => {
        this.record('quantizeModelAwq', input.jobName);
        const result: QuantizeResult = {
          kind: 'quantize',
          simulated: true,
          method: 'awq',
          bits: 4,
          groupSize: 128,
          zeroPoint: true,
          kernel: 'GEMM',
          outputUri: 'file:///store/models/qwen/Qwen-7B-Chat/master/awq-w4-g128',
          files: [],
          sizeBytes: 5_400_000_000,
          originalSizeBytes: 15_400_000_000,
          durationSeconds: 1,
          tool: { name: 'fake', version: '0' },
        };
        return {
          jobName: input.jobName,
          namespace: 'qwenops',
          adopted: false,
          resultUri: 'file:///store/q.json',
          result,
        };
      },
      evaluateModelQuality: async (input) => {
        this.record('evaluateModelQuality', input.jobName);
        const drop = this.options.qualityDropPct ?? 0.4;
        const result: EvaluationResult = {
          kind: 'evaluate',
          simulated: true,
          evalSet: 'fake',
          samples: 200,
          gpuType: 'A10',
          baseline: {
            modelUri: input.baselineUri,
            qualityScore: 0.8,
            memoryGb: 14.2,
            tokensPerSecond: 420,
            taskScores: {},
          },
          candidate: {
            modelUri: input.candidateUri,
            qualityScore: 0.8 * (1 - drop / 100),
            memoryGb: 9.6,
            tokensPerSecond: 850,
            taskScores: {},
          },
          durationSeconds: 1,
        };
        const interval = this.options.qualityInterval;
        if (interval) {
          result.qualityDelta = {
            metric: 'accuracy',
            estimatePct: interval[0],
            lowPct: interval[1],
            highPct: interval[2],
            confidence: 0.95,
            items: 200,
            method: 'paired t-interval over items',
          };
        }
        return {
          jobName: input.jobName,
          namespace: 'qwenops',
          adopted: false,
          resultUri: 'file:///store/e.json',
          result,
        };
      },
      deleteGpuJob: async (input) => {
        this.record('deleteGpuJob', input.jobName.includes('quantize') ? 'quantize' : 'evaluate');
        return true;
      },
      markCandidateRejected: async () => {
        this.record('markCandidateRejected');
      },
      writePromotionReport: async (input) => {
        this.record('writePromotionReport', input.status.outcome);
        this.lastReport = input;
        return { uri: `file:///store/runs/${input.workflowId}/report.json` };
      },
    };
  }

  serving(): ServingActivities {
    return {
      claimServingTarget: async () => {
        this.record('claimServingTarget');
        return this.options.claimHolder
          ? { claimed: false, holder: this.options.claimHolder }
          : { claimed: true };
      },
      releaseServingTarget: async () => {
        this.record('releaseServingTarget');
      },
      renewServingTarget: async () => {
        this.record('renewServingTarget');
        return { leaseSeconds: 120, renewedAt: new Date().toISOString() };
      },
      holdServingTarget: async () => {
        this.record('holdServingTarget');
        const lostAfter = this.options.leaseLostAfterMs;
        if (lostAfter === undefined) return { renewals: 0 };
        await new Promise((r) => setTimeout(r, lostAfter));
        return nonRetryable(
          'the rollout lease of llm-prod/svc is held by workflow other-run',
          'ServingLeaseLost',
        );
      },
      describeServing: async () => {
        this.record('describeServing');
        return this.exists ? this.status() : null;
      },
      ensureStableService: async () => {
        this.record('ensureStableService', this.exists ? 'exists' : 'created');
        this.exists = true;
        return this.status();
      },
      shiftCanaryTraffic: async (input: ShiftTrafficInput) => {
        this.record('shiftCanaryTraffic', input.baseline ? `${input.percent}+baseline` : input.percent);
        if (!this.canaryRevision) this.canaryRevision = `svc-predictor-0000${++this.revisionCounter}`;
        this.canaryStorageUri = input.revision.storageUri;
        this.canaryPercent = input.percent;
        await this.waitIfBlocked(`shiftCanaryTraffic:${input.percent}`);
        return this.status();
      },
      rollbackCanary: async () => {
        this.record('rollbackCanary');
        this.canaryRevision = undefined;
        this.canaryPercent = undefined;
        return this.status();
      },
      promoteCanary: async () => {
        this.record('promoteCanary');
        if (this.canaryRevision) {
          this.stableRevision = this.canaryRevision;
          this.stableStorageUri = this.canaryStorageUri ?? this.stableStorageUri;
        }
        this.canaryRevision = undefined;
        this.canaryPercent = undefined;
        await this.waitIfBlocked('promoteCanary');
        if (this.options.promoteFailsAfterApply) {
          nonRetryable('timed out waiting for the promoted revision to be ready', 'ClusterError.Timeout');
        }
        return this.status();
      },
      analyseCanaryStep: async (input: AnalyseStepInput): Promise<AnalysisResult> => {
        const n = this.analysisCount++;
        this.record('analyseCanaryStep', input.canaryPercent);
        if (this.options.blockAnalysis) {
          const ctx = Context.current();
          for (const resolve of this.analysisStartedResolvers.splice(0)) resolve();
          const released = new Promise<void>((resolve) => {
            this.releaseAnalysis = resolve;
          });
          const beat = setInterval(() => ctx.heartbeat(), 100);
          try {
            await Promise.race([released, ctx.cancelled]);
          } catch (err) {
            this.analysisCancelled = true;
            throw err;
          } finally {
            clearInterval(beat);
          }
        }
        const verdict = this.options.verdicts?.[n] ?? 'pass';
        const reasons =
          verdict === 'pass'
            ? []
            : verdict === 'fail'
              ? ['canary p99 612 ms > 300 ms']
              : ['only 3 samples, need 30'];
        return {
          step: input.step,
          canaryPercent: input.canaryPercent,
          verdict,
          reasons,
          checks: [],
          provider: 'fake',
          startedAt: new Date().toISOString(),
          finishedAt: new Date().toISOString(),
        };
      },
      runLoadTest: async (): Promise<LoadTestOutcome> => {
        this.record('runLoadTest');
        await this.waitIfBlocked('runLoadTest');
        const passed = this.options.loadTestPassed ?? true;
        if (!passed) return { passed, reasons: ['p99 TTFT 480 ms > 300 ms'], summary: { p99TtftMs: 480 } };
        return { passed, reasons: [], summary: { p99TtftMs: 120, errorRatePct: 0 } };
      },
    };
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Fails with a non-retryable application error; for scripted failures. */
export function nonRetryable(message: string, type: string): never {
  throw ApplicationFailure.create({ message, type, nonRetryable: true });
}

/**
 * Activity maps that forward to whichever FakeActivities is current, so one set of workers
 * serves a whole test file (creating Workers is the slow part of a workflow test). The
 * promotion map also carries the workflows' own spec resolution (real, it is pure), since
 * it is what the workflow worker registers.
 */
export function forwardingActivities(current: () => FakeActivities): {
  promotion: PromotionActivities & SpecActivities;
  /** The cluster queue's activities: serving and the safety gate. */
  serving: ServingActivities & SafetyActivities;
} {
  const forward = <T extends object>(pick: (f: FakeActivities) => T, names: (keyof T)[]): T =>
    Object.fromEntries(
      names.map((name) => [
        name,
        (...args: unknown[]) => (pick(current())[name] as (...a: unknown[]) => unknown)(...args),
      ]),
    ) as T;
  return {
    promotion: {
      ...specActivities,
      ...forward(
        (f) => f.promotion(),
        [
          'resolveModel',
          'downloadModel',
          'quantizeModelAwq',
          'evaluateModelQuality',
          'deleteGpuJob',
          'markCandidateRejected',
          'writePromotionReport',
        ],
      ),
    },
    serving: {
      ...forward(
        (f) => f.safety(),
        ['serveValidationCandidate', 'runSafetyGate', 'removeValidationCandidate'],
      ),
      ...forward(
        (f) => f.serving(),
        [
          'claimServingTarget',
          'releaseServingTarget',
          'renewServingTarget',
          'holdServingTarget',
          'describeServing',
          'ensureStableService',
          'shiftCanaryTraffic',
          'rollbackCanary',
          'promoteCanary',
          'analyseCanaryStep',
          'runLoadTest',
        ],
      ),
    },
  };
}
