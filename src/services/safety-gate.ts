import type { WaitOptions } from '../cluster/port.js';
import { artifactKeys } from '../domain/artifact-layout.js';
import { CatalogedError } from '../domain/failures.js';
import { stageObjectName } from '../domain/names.js';
import {
  evaluateSafetyGate,
  type SafetyGatePolicy,
  type SafetyGateVerdict,
  type SafetyTally,
} from '../domain/safety-gate.js';
import type { ServingRef, ServingRevisionSpec } from '../domain/serving-revision.js';
import { OpenAiClient } from '../llm/client.js';
import type { Guard } from '../safety/guard.js';
import { builtinPromptSet, type PromptSet, parsePromptSetBytes } from '../safety/prompt-set.js';
import { runSafetyPrompts, type SafetyOutcome, tallySafetyOutcomes } from '../safety/safety-gate.js';
import type { ArtifactStore } from '../storage/port.js';
import type { ServingService } from './serving-rollout.js';

// The safety gate's service side: serve the candidate on a private validation service, run
// the prompt sets through guard + candidate, store every outcome, judge the rates, and
// delete the validation service. Knows nothing of Temporal: the activities wrap it.

export interface SafetyGateServiceOptions {
  serving: ServingService;
  store: ArtifactStore;
  /** The guard users' requests pass (lexicon, then a moderation classifier when configured). */
  guard: () => Promise<Guard>;
  /** Namespace of validation services (config cluster.validationNamespace). */
  namespace: string;
}

export interface SafetyGateReport {
  passed: boolean;
  verdict: SafetyGateVerdict;
  tally: SafetyTally;
  promptSet: { name: string; version: string };
  guard: string;
  /** Stored outcomes, one per prompt. */
  resultUri: string;
  /** The validation revision that answered. */
  servedBy: string;
}

type Hooks = Pick<WaitOptions, 'signal' | 'onProgress'>;

/** How often (settled prompts) a run records its outcomes for a retry to resume from. */
const CHECKPOINT_EVERY = 25;

export class SafetyGateService {
  constructor(private readonly options: SafetyGateServiceOptions) {}

  /** The deterministic validation service of a workflow (one per promotion). */
  validationRef(workflowId: string, deploymentMode: ServingRef['deploymentMode']): ServingRef {
    return {
      namespace: this.options.namespace,
      name: stageObjectName(workflowId, 'safety', 40),
      deploymentMode,
    };
  }

  /** Serves the candidate alone (one replica) and returns its OpenAI base URL. */
  async serveCandidate(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number },
    hooks: Hooks = {},
  ): Promise<{ baseUrl: string; revision: string }> {
    const status = await this.options.serving.serveForValidation(
      ref,
      revision,
      { ...ctx, purpose: 'the safety gate' },
      hooks,
    );
    const endpoints = this.options.serving.endpoints(status);
    const baseUrl = endpoints.stable?.baseUrl ?? endpoints.service;
    if (!baseUrl) throw new Error(`validation service ${ref.namespace}/${ref.name} is ready but has no URL`);
    return { baseUrl, revision: endpoints.stable?.revision ?? status.latestRolledoutRevision ?? ref.name };
  }

  async removeCandidate(ref: ServingRef, ctx: { workflowId: string; actor: string }): Promise<boolean> {
    return this.options.serving.removeValidationService(ref, ctx);
  }

  async loadPromptSet(name: string): Promise<PromptSet> {
    if (name.startsWith('store:')) {
      const key = name.slice('store:'.length);
      return parsePromptSetBytes(await this.options.store.getBuffer(key), name);
    }
    return builtinPromptSet(name as Parameters<typeof builtinPromptSet>[0]);
  }

  /** Runs both prompt sets against the candidate at `baseUrl` and judges the rates. */
  async run(
    request: {
      workflowId: string;
      baseUrl: string;
      servedModelName: string;
      servedBy: string;
      policy: SafetyGatePolicy;
    },
    hooks: Hooks & {
      resumeFrom?: SafetyOutcome[];
      checkpoint?: (outcomes: SafetyOutcome[]) => void;
    } = {},
  ): Promise<SafetyGateReport> {
    const { policy } = request;
    const promptSet = await this.loadPromptSet(policy.promptSet);
    for (const [set, size] of [
      ['shouldRefuse', promptSet.shouldRefuse.length],
      ['normal', promptSet.normal.length],
    ] as const) {
      if (size < policy.minPromptsPerSet) {
        throw new CatalogedError(
          'InvalidInput',
          `safety prompt set ${promptSet.name}: ${set} holds ${size} prompts, safetyGate.minPromptsPerSet asks for ${policy.minPromptsPerSet}`,
        );
      }
    }
    const guard = await this.options.guard();
    const client = new OpenAiClient({
      baseUrl: request.baseUrl,
      headersTimeoutMs: 120_000,
      bodyTimeoutMs: 120_000,
    });
    const ask = async (prompt: string) => {
      const completion = await client.chat(
        {
          model: request.servedModelName,
          messages: [{ role: 'user', content: prompt }],
          max_tokens: policy.maxTokens,
          temperature: 0,
        },
        { signal: hooks.signal },
      );
      return completion.choices[0]?.message?.content ?? '';
    };
    const outcomes = await runSafetyPrompts({ guard, ask }, promptSet, {
      concurrency: policy.concurrency,
      done: hooks.resumeFrom,
      signal: hooks.signal,
      onProgress: ({ settled, total, outcomes: snapshot }) => {
        hooks.onProgress?.(`safety gate: ${settled}/${total} prompts judged`);
        if (settled % CHECKPOINT_EVERY === 0 || settled === total) hooks.checkpoint?.(snapshot());
      },
    });
    const tally = tallySafetyOutcomes(outcomes);
    const verdict = evaluateSafetyGate(tally, policy);
    const key = `${artifactKeys.runDir(request.workflowId)}/safety-gate.json`;
    await this.options.store.putJson(key, {
      promptSet: { name: promptSet.name, version: promptSet.version },
      guard: guard.name,
      servedBy: request.servedBy,
      policy,
      tally,
      verdict,
      outcomes,
    });
    return {
      passed: verdict.passed,
      verdict,
      tally,
      promptSet: { name: promptSet.name, version: promptSet.version },
      guard: guard.name,
      resultUri: this.options.store.uri(key),
      servedBy: request.servedBy,
    };
  }
}
