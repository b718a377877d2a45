import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import {
  ApplicationFailure,
  defaultPayloadConverter,
  type PayloadCodec,
  WorkflowIdReusePolicy,
} from '@temporalio/common';
import { optionalTsToDate } from '@temporalio/common/lib/time.js';
import { FAILURE_TYPES, SEARCH_ATTRIBUTES, statusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import { canaryRelease, promoteModel } from '../../workflows/index.js';
import type { CanaryReleaseSpec } from '../domain/canary.js';
import { slugify } from '../domain/names.js';
import type { PromotionSpec } from '../domain/promotion-spec.js';
import type { PipelineStatus } from '../domain/status.js';

// Starting, watching and concluding pipelines from a client (CLI, demo, CI).

export class AlreadyStartedError extends Error {
  override readonly name = 'AlreadyStartedError';
}

export function promotionWorkflowId(spec: Pick<PromotionSpec, 'model' | 'hub'>): string {
  return `promote-${slugify(`${spec.model}-${spec.hub.revision}`)}`;
}

/**
 * The workflow id of a CI release: derived from the service and the release (a commit, a tag,
 * a pipeline id), so a re-run of the same CI job names the same workflow and attaches to it.
 */
export function releaseWorkflowId(service: { namespace: string; name: string }, release: string): string {
  return `canary-${slugify(`${service.namespace}-${service.name}-${release}`)}`.slice(0, 200);
}

export function canaryWorkflowId(spec: Pick<CanaryReleaseSpec, 'serving' | 'storageUri'>): string {
  return `canary-${slugify(`${spec.serving.namespace}-${spec.serving.name}-${spec.storageUri.split('/').slice(-2).join('-')}`)}`.slice(
    0,
    200,
  );
}

/** The two rollout pipelines; their handles' results are typed by the workflow functions. */
export type Pipeline = typeof promoteModel | typeof canaryRelease;

/** Start options shared by both pipelines. */
function pipelineStart(workflowId: string, memo: Record<string, unknown>) {
  return {
    taskQueue: TASK_QUEUES.default,
    workflowId,
    // A running or successful pipeline with this id refuses a second start; a failed one may be retried.
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    memo,
  };
}

/** Runs a start, turning "already started" into a message that says what to do. */
async function refuseDuplicate<H>(workflowId: string, start: () => Promise<H>): Promise<H> {
  try {
    return await start();
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new AlreadyStartedError(
        `${workflowId} was already started (running, or finished successfully): see "qwenops status ${workflowId}"; pass --id to start another`,
      );
    }
    throw err;
  }
}

export function startPromotion(
  client: Client,
  spec: PromotionSpec,
  workflowId = promotionWorkflowId(spec),
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof promoteModel>> {
  return refuseDuplicate(workflowId, () =>
    client.workflow.start(promoteModel, {
      args: [spec],
      ...pipelineStart(workflowId, { requestedBy: spec.requestedBy }),
    }),
  );
}

export function startCanaryRelease(
  client: Client,
  spec: CanaryReleaseSpec,
  workflowId = canaryWorkflowId(spec),
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof canaryRelease>> {
  return refuseDuplicate(workflowId, () =>
    client.workflow.start(canaryRelease, {
      args: [spec],
      ...pipelineStart(workflowId, { requestedBy: spec.requestedBy }),
    }),
  );
}

/** What a start found: a new run, a run of this id still going, or one that has finished. */
export type StartState = 'started' | 'running' | 'finished';

/**
 * Starts a canary release, or finds the release of that id (idempotent starts for CI).
 *
 * The id reuse policy is REJECT_DUPLICATE (a finished release, whatever its outcome, is never
 * started again under its id) and the conflict policy is the default, FAIL: the server refuses
 * the start with WorkflowExecutionAlreadyStartedError, and the client then describes the run
 * to say whether it is still running (attach and wait) or finished (report its outcome). With
 * USE_EXISTING the server would hand back the running run without saying that it was not this
 * start that made it. A release of another id on the same service is refused by the workflow
 * itself (the service lease, its `claim` stage), naming the workflow that holds it.
 */
export async function startOrAttachCanaryRelease(
  client: Client,
  spec: CanaryReleaseSpec,
  workflowId = canaryWorkflowId(spec),
): Promise<{ handle: WorkflowHandle<typeof canaryRelease>; state: StartState; runId?: string }> {
  try {
    const handle = await client.workflow.start(canaryRelease, {
      args: [spec],
      ...pipelineStart(workflowId, { requestedBy: spec.requestedBy }),
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    });
    return { handle, state: 'started', runId: handle.firstExecutionRunId };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const handle = client.workflow.getHandle<typeof canaryRelease>(workflowId);
    const description = await handle.describe();
    if (description.type !== 'canaryRelease') {
      throw new AlreadyStartedError(
        `${workflowId} is a ${description.type} workflow, not a canary release: pass another --id or --release`,
      );
    }
    return {
      handle,
      state: description.status.name === 'RUNNING' ? 'running' : 'finished',
      runId: description.runId,
    };
  }
}

export interface Conclusion {
  outcome: PipelineStatus['outcome'];
  reason?: string;
  failureType?: string;
  status?: PipelineStatus;
  result?: unknown;
}

/** Waits for the workflow to close and says how it ended. */
export async function conclude(handle: WorkflowHandle<Pipeline>): Promise<Conclusion> {
  try {
    const result = await handle.result();
    return { outcome: 'promoted', status: result.status, result };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const cause = err.cause;
    const status = await handle.query(statusQuery).catch(() => undefined);
    if (cause instanceof ApplicationFailure) {
      const outcome: Conclusion['outcome'] =
        cause.type === FAILURE_TYPES.rolledBack
          ? 'rolled_back'
          : cause.type === FAILURE_TYPES.aborted
            ? 'aborted'
            : cause.type === FAILURE_TYPES.rejected || cause.type === FAILURE_TYPES.approvalTimeout
              ? 'rejected'
              : 'failed';
      return { outcome, reason: cause.message, failureType: cause.type ?? undefined, status };
    }
    return {
      outcome: status?.outcome === 'aborted' ? 'aborted' : 'failed',
      reason: cause?.message ?? err.message,
      status,
    };
  }
}

/** Pending activities with their last heartbeat, as the Temporal UI shows them. */
/** The parts of a pending activity (describe's raw proto) that tell a person what is going on. */
export interface PendingActivityInfo {
  activityType?: { name?: string | null } | null;
  attempt?: number | null;
  maximumAttempts?: number | null;
  state?: number | null;
  lastFailure?: { message?: string | null; cause?: { message?: string | null } | null } | null;
  nextAttemptScheduleTime?: Parameters<typeof optionalTsToDate>[0];
}

/**
 * One line per pending activity: its name, attempt, heartbeat progress, and while it waits
 * between retries, why the last attempt failed and when the next one starts.
 */
export function describePendingActivity(activity: PendingActivityInfo, progress = ''): string {
  const name = activity.activityType?.name ?? 'activity';
  const attempt =
    activity.attempt && activity.attempt > 1
      ? ` (attempt ${activity.attempt}${activity.maximumAttempts ? ` of ${activity.maximumAttempts}` : ''})`
      : '';
  const failure = activity.lastFailure;
  const failureMessage = [failure?.message, failure?.cause?.message]
    .filter((m): m is string => Boolean(m))
    .filter((m, i, all) => all.indexOf(m) === i)
    .join(': ');
  const next = optionalTsToDate(activity.nextAttemptScheduleTime ?? undefined);
  const parts = [`${name}${attempt}`];
  if (next) parts.push(`retrying at ${next.toISOString()}`);
  else if (progress) parts.push(progress);
  if (failureMessage && (next || (activity.attempt ?? 1) > 1)) parts.push(`last failure: ${failureMessage}`);
  return parts.join(': ');
}

export async function pendingActivities(handle: WorkflowHandle, codec?: PayloadCodec): Promise<string[]> {
  const description = await handle.describe();
  const pending = description.raw.pendingActivities ?? [];
  const lines: string[] = [];
  for (const activity of pending) {
    let progress = '';
    const payloads = activity.heartbeatDetails?.payloads ?? [];
    if (payloads.length > 0) {
      try {
        const decoded = codec ? await codec.decode(payloads as never) : payloads;
        const value = defaultPayloadConverter.fromPayload(decoded[0] as never) as { progress?: string };
        progress = value?.progress ?? '';
      } catch {
        progress = '(undecodable heartbeat)';
      }
    }
    lines.push(describePendingActivity(activity, progress));
  }
  return lines;
}

/**
 * Polls the status query until the workflow closes, calling `onChange` whenever the visible
 * state changes. Queries are cheap and need no history replay on a sticky worker.
 */
export async function follow(
  handle: WorkflowHandle,
  onChange: (status: PipelineStatus, pending: string[], unchanged: boolean) => void,
  options: {
    intervalMs?: number;
    codec?: PayloadCodec;
    until?: (s: PipelineStatus) => boolean;
    /**
     * Calls `onChange` again (with `unchanged` true) when nothing changed for this long, so a
     * CI runner watching the output never sees an idle job.
     */
    repeatAfterMs?: number;
    /** Stops following (returns the last status) once aborted. */
    signal?: AbortSignal;
  } = {},
): Promise<PipelineStatus | undefined> {
  let lastKey = '';
  let last: PipelineStatus | undefined;
  let lastCall = 0;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', done);
        resolve();
      }
      options.signal?.addEventListener('abort', done, { once: true });
    });
  for (;;) {
    if (options.signal?.aborted) return last;
    const status = await handle.query(statusQuery).catch(() => undefined);
    if (status) {
      last = status;
      const pending =
        status.outcome === 'running' ? await pendingActivities(handle, options.codec).catch(() => []) : [];
      const key = JSON.stringify([
        status.stage,
        status.progress,
        status.pendingDecision?.gate,
        status.outcome,
        status.traffic,
        pending,
      ]);
      if (key !== lastKey) {
        lastKey = key;
        lastCall = Date.now();
        onChange(status, pending, false);
      } else if (options.repeatAfterMs !== undefined && Date.now() - lastCall >= options.repeatAfterMs) {
        lastCall = Date.now();
        onChange(status, pending, true);
      }
      if (status.outcome !== 'running' || options.until?.(status)) return status;
    } else {
      const description = await handle.describe().catch(() => undefined);
      if (description && description.status.name !== 'RUNNING') return last;
      // No answer to the query (no worker?): the last status again, so output never goes idle.
      if (last && options.repeatAfterMs !== undefined && Date.now() - lastCall >= options.repeatAfterMs) {
        lastCall = Date.now();
        onChange(last, [], true);
      }
    }
    await sleep(options.intervalMs ?? 1000);
  }
}

export const LIST_QUERY = `WorkflowType IN ('promoteModel', 'canaryRelease')`;

export interface ListedPipeline {
  workflowId: string;
  type: string;
  status: string;
  startTime: string;
  model?: string;
  service?: string;
  stage?: string;
  outcome?: string;
}

export async function listPipelines(
  client: Client,
  options: { running?: boolean; limit?: number } = {},
): Promise<ListedPipeline[]> {
  const query = options.running ? `${LIST_QUERY} AND ExecutionStatus = 'Running'` : LIST_QUERY;
  const rows: ListedPipeline[] = [];
  const first = (v: unknown) => (Array.isArray(v) ? String(v[0]) : undefined);
  for await (const wf of client.workflow.list({ query })) {
    const sa = wf.searchAttributes;
    rows.push({
      workflowId: wf.workflowId,
      type: wf.type,
      status: wf.status.name,
      startTime: wf.startTime.toISOString(),
      model: first(sa[SEARCH_ATTRIBUTES.model.name]),
      service: first(sa[SEARCH_ATTRIBUTES.service.name]),
      stage: first(sa[SEARCH_ATTRIBUTES.stage.name]),
      outcome: first(sa[SEARCH_ATTRIBUTES.outcome.name]),
    });
    if (rows.length >= (options.limit ?? 50)) break;
  }
  return rows;
}
