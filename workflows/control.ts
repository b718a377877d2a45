// Human control and visible state shared by promoteModel and canaryRelease: the status the
// `status` query returns, the search attributes mirrored from it, and the approve / reject /
// abort / pause / resume handlers (as signals for the UI and validated updates for the CLI).

import {
  ApplicationFailure,
  type CancellationScope,
  condition,
  log,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AnalysisResult } from '../src/domain/analysis.js';
import {
  type AbortRequest,
  type ActorRequest,
  CONTROL_SCHEMAS,
  type ControlSchema,
  type Decision,
  parseControlPayload,
  type TrafficStepRequest,
} from '../src/domain/control.js';
import type {
  CompensationRecord,
  Outcome,
  PendingDecision,
  PipelineStatus,
  StageRecord,
  StageState,
} from '../src/domain/status.js';
import { clipUtf8 } from '../src/domain/units.js';
import {
  abortSignal,
  abortUpdate,
  approveSignal,
  approveUpdate,
  FAILURE_TYPES,
  pauseSignal,
  pauseUpdate,
  rejectSignal,
  rejectUpdate,
  resumeSignal,
  resumeUpdate,
  setTrafficStepUpdate,
  statusQuery,
} from './definitions.js';
import { publishOutcome, publishStage } from './visibility.js';

/** The workflow clock: Temporal replaces Date inside workflows with deterministic task time. */
export function nowIso(): string {
  return new Date().toISOString();
}

/** How many ignored signals the status keeps (newest last). */
const IGNORED_SIGNALS_KEPT = 10;

/** Stages a pause applies to: the rollout up to, not including, the promote step. */
const PAUSABLE_STAGES = new Set(['canary', 'load-test', 'approve-promote']);

export type DecisionOutcome =
  | { kind: 'approved'; by: string }
  | { kind: 'rejected'; by: string; reason: string }
  | { kind: 'timeout' };

export class PipelineControl {
  readonly status: PipelineStatus;
  private pendingAnswer?: DecisionOutcome;
  private abortRequest?: { by: string; reason: string };
  private requestedPercent?: number;
  /** The scope the pipeline body runs in; abort cancels it so waits and activities stop. */
  bodyScope?: CancellationScope;
  /** Canary steps of the plan, set once the canary starts (for setTrafficStep validation). */
  canarySteps: readonly number[] = [];
  canaryStepIndex = -1;
  /** Set while the promote step runs: production is being switched, an abort is refused. */
  committing = false;

  constructor(init: {
    kind: PipelineStatus['kind'];
    model?: string;
    service: { namespace: string; name: string };
    stages: readonly string[];
  }) {
    this.status = {
      kind: init.kind,
      workflowId: workflowInfo().workflowId,
      model: init.model,
      service: init.service,
      stage: init.stages[0] ?? 'start',
      stages: init.stages.map((name) => ({ name, state: 'pending' })),
      progress: { percent: 0, message: 'starting' },
      traffic: { canaryPercent: 0 },
      analyses: 0,
      paused: false,
      outcome: 'running',
      compensations: [],
      artifacts: {},
    };
  }

  // ---- visible state -------------------------------------------------------------

  private stage(name: string): StageRecord {
    let record = this.status.stages.find((s) => s.name === name);
    if (!record) {
      record = { name, state: 'pending' };
      this.status.stages.push(record);
    }
    return record;
  }

  startStage(name: string, message: string): void {
    const record = this.stage(name);
    record.state = 'running';
    record.startedAt ??= nowIso();
    record.detail = message;
    this.status.stage = name;
    this.setProgress(message);
    publishStage(name);
  }

  setStageState(name: string, state: StageState, detail?: string): void {
    const record = this.stage(name);
    record.state = state;
    if (detail !== undefined) record.detail = detail;
    if (state === 'succeeded' || state === 'failed' || state === 'skipped' || state === 'compensated') {
      record.finishedAt ??= nowIso();
    }
  }

  finishStage(name: string, detail: string): void {
    this.setStageState(name, 'succeeded', detail);
  }

  skipStage(name: string, detail: string): void {
    this.setStageState(name, 'skipped', detail);
  }

  /**
   * Overall progress: finished stages plus `stageFraction` (0..1) of the current one, so a
   * long stage (the canary) moves the bar without jumping backwards.
   */
  setProgress(message: string, stageFraction = 0): void {
    const done = this.status.stages.filter((s) => s.state === 'succeeded' || s.state === 'skipped').length;
    const fraction = Math.min(1, Math.max(0, stageFraction));
    this.status.progress = {
      percent: Math.round(((done + fraction) / Math.max(1, this.status.stages.length)) * 100),
      message,
    };
  }

  recordAnalysis(result: AnalysisResult): void {
    this.status.lastAnalysis = result;
    this.status.analyses += 1;
  }

  recordCompensation(record: CompensationRecord): void {
    this.status.compensations.push(record);
  }

  /**
   * The start input was refused (InvalidInput): the status says so. No search attribute
   * here: workflows/failures.ts invalidInput publishes the outcome.
   */
  refuse(reason: string): void {
    this.status.outcome = 'failed';
    this.status.reason = reason;
    this.status.progress = { percent: 0, message: `refused: ${reason}` };
  }

  finish(outcome: Outcome, reason?: string): void {
    this.status.outcome = outcome;
    this.status.reason = reason;
    this.status.pendingDecision = undefined;
    this.status.paused = false;
    if (outcome === 'promoted') this.status.progress = { percent: 100, message: 'promoted' };
    else
      this.status.progress = {
        percent: this.status.progress.percent,
        message: `${outcome}: ${reason ?? ''}`.trim(),
      };
    publishOutcome(
      outcome,
      reason ? { text: reason, summary: `${outcome} in stage ${this.status.stage}` } : undefined,
    );
  }

  // ---- handlers ------------------------------------------------------------------

  install(): void {
    setHandler(statusQuery, () => this.status);

    // Signals cannot be refused, so a payload that does not parse, or an action that makes
    // no sense now, is recorded as ignored and changes nothing. Updates run the same checks
    // in their validator and refuse with the reason instead.
    const viaSignal =
      <T>(name: string, schema: ControlSchema<T>, act: (value: T) => void, check: (value: T) => void) =>
      (payload: unknown) => {
        const parsed = parseControlPayload(schema.schema, payload, { optional: schema.optional });
        if (!parsed.ok) return this.ignoreSignal(name, parsed.problem);
        try {
          check(parsed.value);
        } catch (err) {
          return this.ignoreSignal(name, (err as Error).message);
        }
        act(parsed.value);
      };
    const validator =
      <T>(schema: ControlSchema<T>, check: (value: T) => void) =>
      (payload: unknown) => {
        const parsed = parseControlPayload(schema.schema, payload, { optional: schema.optional });
        if (!parsed.ok) throw new Error(`invalid payload: ${parsed.problem}`);
        check(parsed.value);
      };
    const viaUpdate =
      <T>(schema: ControlSchema<T>, act: (value: T) => void) =>
      (payload: unknown) => {
        // The validator accepted it; parsing again yields the cleaned value.
        const parsed = parseControlPayload(schema.schema, payload, { optional: schema.optional });
        if (!parsed.ok) throw ApplicationFailure.create({ message: `invalid payload: ${parsed.problem}` });
        act(parsed.value);
        return this.status;
      };

    const { decision, abort: abortRequest, actor: actorRequest, trafficStep: stepRequest } = CONTROL_SCHEMAS;

    const approve = (d: Decision) => this.answer({ kind: 'approved', by: d.by ?? 'unknown' });
    const reject = (d: Decision) =>
      this.answer({ kind: 'rejected', by: d.by ?? 'unknown', reason: d.comment ?? 'rejected by a human' });
    const abort = (r: AbortRequest) => this.requestAbort(r.by ?? 'unknown', r.reason ?? 'aborted by a human');
    const pause = (r: ActorRequest) => this.setPaused(true, r.by);
    const resume = (r: ActorRequest) => this.setPaused(false, r.by);
    const setStep = (r: TrafficStepRequest) => {
      this.requestedPercent = r.percent;
    };

    const checkDecision = (d: Decision) => this.checkDecision(d);
    const checkAbort = () => this.checkAbort();
    const checkPause = () => this.checkPause();
    const checkResume = () => {
      if (!this.status.paused) throw new Error('cannot resume: not paused');
    };
    const checkStep = (r: TrafficStepRequest) => this.checkTrafficStep(r);

    setHandler(approveSignal, viaSignal('approve', decision, approve, checkDecision));
    setHandler(rejectSignal, viaSignal('reject', decision, reject, checkDecision));
    setHandler(abortSignal, viaSignal('abort', abortRequest, abort, checkAbort));
    setHandler(pauseSignal, viaSignal('pause', actorRequest, pause, checkPause));
    setHandler(resumeSignal, viaSignal('resume', actorRequest, resume, checkResume));

    setHandler(approveUpdate, viaUpdate(decision, approve), {
      validator: validator(decision, checkDecision),
    });
    setHandler(rejectUpdate, viaUpdate(decision, reject), { validator: validator(decision, checkDecision) });
    setHandler(abortUpdate, viaUpdate(abortRequest, abort), {
      validator: validator(abortRequest, checkAbort),
    });
    setHandler(pauseUpdate, viaUpdate(actorRequest, pause), {
      validator: validator(actorRequest, checkPause),
    });
    setHandler(resumeUpdate, viaUpdate(actorRequest, resume), {
      validator: validator(actorRequest, checkResume),
    });
    setHandler(setTrafficStepUpdate, viaUpdate(stepRequest, setStep), {
      validator: validator(stepRequest, checkStep),
    });
  }

  /** Keeps the last few ignored signals visible in the status, and in the worker log. */
  private ignoreSignal(name: string, problem: string): void {
    const entry = `ignored signal ${name} at ${nowIso()}: ${clipUtf8(problem, 500)}`;
    const list = this.status.ignoredSignals ?? [];
    list.push(entry);
    this.status.ignoredSignals = list.slice(-IGNORED_SIGNALS_KEPT);
    log.warn('ignored signal', { signal: name, problem: clipUtf8(problem, 500) });
  }

  private checkDecision(d: Decision): void {
    const pending = this.status.pendingDecision;
    if (!pending) {
      throw new Error(
        `nothing is waiting for a decision (stage: ${this.status.stage}, outcome: ${this.status.outcome})`,
      );
    }
    if (d.gate !== pending.gate) {
      throw new Error(`the decision names gate ${d.gate}, but the pipeline waits at gate ${pending.gate}`);
    }
  }

  private checkAbort(): void {
    if (this.status.outcome !== 'running' || this.abortRequest) {
      throw new Error(`cannot abort: the pipeline is ${this.describeState()}`);
    }
    if (this.committing) {
      throw new Error(
        'cannot abort: the promote step is making the candidate the stable revision; once it has finished, roll back with a new release of the previous revision',
      );
    }
  }

  private checkPause(): void {
    if (
      this.status.outcome !== 'running' ||
      !PAUSABLE_STAGES.has(this.status.stage) ||
      this.status.paused ||
      this.committing
    ) {
      throw new Error(
        `cannot pause: pausing applies to a rollout before its promote step (stage: ${this.status.stage}, paused: ${this.status.paused})`,
      );
    }
  }

  private checkTrafficStep(r: TrafficStepRequest): void {
    if (this.status.stage !== 'canary' || this.canaryStepIndex < 0) {
      throw new Error('cannot set the traffic step: no canary is running');
    }
    if (!this.canarySteps.includes(r.percent)) {
      throw new Error(`percent must be one of the plan's steps: ${this.canarySteps.join(', ')}`);
    }
    const current = this.canarySteps[this.canaryStepIndex] ?? 0;
    if (r.percent <= current) {
      throw new Error(`percent must be above the current step (${current}%); use abort to roll back`);
    }
  }

  private describeState(): string {
    return this.status.outcome === 'running'
      ? `at stage ${this.status.stage}`
      : `already ${this.status.outcome}`;
  }

  private answer(outcome: DecisionOutcome): void {
    this.pendingAnswer = outcome;
  }

  private setPaused(paused: boolean, by?: string): void {
    this.status.paused = paused;
    this.status.progress = {
      percent: this.status.progress.percent,
      message: paused ? `paused by ${by ?? 'unknown'}` : `resumed by ${by ?? 'unknown'}`,
    };
  }

  /** Stops renewing the rollout lease (set once the hold runs); call before releasing it. */
  stopLeaseHold: () => void = () => {};
  private leaseLostReason?: string;

  /** The rollout lease is no longer ours: stop everything the pipeline does. */
  loseLease(reason: string): void {
    if (this.leaseLostReason || this.status.outcome !== 'running') return;
    this.leaseLostReason = reason;
    this.bodyScope?.cancel();
  }

  get leaseLost(): string | undefined {
    return this.leaseLostReason;
  }

  private requestAbort(by: string, reason: string): void {
    this.abortRequest = { by, reason };
    this.bodyScope?.cancel();
  }

  get aborted(): { by: string; reason: string } | undefined {
    return this.abortRequest;
  }

  /** Consumes a pending setTrafficStep request, if any. */
  takeRequestedPercent(): number | undefined {
    const p = this.requestedPercent;
    this.requestedPercent = undefined;
    return p;
  }

  /**
   * Waits for a human decision with a deadline. Every wait has a deadline: a missing answer
   * is a 'timeout', which callers treat as a rejection.
   */
  async awaitDecision(
    gate: PendingDecision['gate'],
    question: string,
    timeoutSeconds: number,
  ): Promise<DecisionOutcome> {
    const since = new Date();
    const pending: PendingDecision = {
      gate,
      since: since.toISOString(),
      deadline: new Date(since.getTime() + timeoutSeconds * 1000).toISOString(),
      question,
    };
    this.pendingAnswer = undefined;
    this.status.pendingDecision = pending;
    this.status.progress = {
      percent: this.status.progress.percent,
      message: `waiting for a decision: ${question}`,
    };
    try {
      const answered = await condition(() => this.pendingAnswer !== undefined, timeoutSeconds * 1000);
      return answered && this.pendingAnswer ? this.pendingAnswer : { kind: 'timeout' };
    } finally {
      this.status.pendingDecision = undefined;
      this.pendingAnswer = undefined;
    }
  }

  /**
   * Blocks while paused, up to `maxPauseSeconds`. Returns false when the pause outlived its
   * deadline (the caller rolls back).
   */
  async waitWhilePaused(maxPauseSeconds: number): Promise<boolean> {
    if (!this.status.paused) return true;
    return condition(() => !this.status.paused, maxPauseSeconds * 1000);
  }
}

/** An approval gate: skipped when the policy says so; rejection and timeout end the promotion. */
export async function approvalGate(
  control: PipelineControl,
  stage: string,
  gate: 'before-canary' | 'before-promote',
  required: boolean,
  timeoutSeconds: number,
  question: string,
): Promise<void> {
  if (!required) {
    control.skipStage(stage, 'no approval required by the spec');
    return;
  }
  control.startStage(stage, question);
  control.setStageState(stage, 'waiting');
  const answer = await control.awaitDecision(gate, question, timeoutSeconds);
  if (answer.kind === 'approved') {
    control.finishStage(stage, `approved by ${answer.by}`);
    return;
  }
  if (answer.kind === 'rejected') {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.rejected,
      message: `rejected by ${answer.by} at ${stage}: ${answer.reason}`,
      nonRetryable: true,
    });
  }
  throw ApplicationFailure.create({
    type: FAILURE_TYPES.approvalTimeout,
    message: `no approval at ${stage} within ${timeoutSeconds}s`,
    nonRetryable: true,
  });
}
