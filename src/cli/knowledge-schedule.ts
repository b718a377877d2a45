import {
  type Client,
  type ScheduleDescription,
  ScheduleNotFoundError,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { SEARCH_ATTRIBUTES, TASK_QUEUES } from '../../workflows/definitions.js';
import type { reindexKnowledgeBase } from '../../workflows/reindex-knowledge-base.js';
import type { ReindexRequest, ReindexRequestInput } from '../domain/knowledge.js';

// The nightly re-index as a Temporal Schedule: created or updated in place (same id),
// overlapping runs skipped (a re-index still running when the next one is due wins), and
// runs missed while the server was down caught up within the catch-up window.

export interface ReindexScheduleOptions {
  scheduleId: string;
  cron: string;
  timezone: string;
  request: ReindexRequestInput & Pick<ReindexRequest, 'table'>;
  /** How far back missed runs are still started after an outage, ms. */
  catchupWindowMs: number;
  note?: string;
  paused?: boolean;
}

export function defaultScheduleId(table: string): string {
  return `qwenops-kb-reindex-${table.replace(/_/g, '-')}`;
}

function scheduleOptions(options: ReindexScheduleOptions): ScheduleOptions {
  return {
    scheduleId: options.scheduleId,
    spec: { cronExpressions: [options.cron], timezone: options.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: 'reindexKnowledgeBase',
      taskQueue: TASK_QUEUES.default,
      // The server appends the scheduled time, so each run has its own id.
      workflowId: `reindex-${options.request.table}`,
      args: [
        { request: { ...options.request, requestedBy: options.request.requestedBy ?? 'schedule' } },
      ] as Parameters<typeof reindexKnowledgeBase>,
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.service, value: `knowledge/${options.request.table}` },
      ],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: options.catchupWindowMs },
    state: {
      paused: options.paused ?? false,
      note: options.note ?? 'nightly knowledge-base re-index (qwenops)',
    },
    // The server keeps cron specs as calendars; the memo keeps what the operator typed.
    memo: { cron: options.cron, timezone: options.timezone, table: options.request.table },
  };
}

/** Creates the schedule, or updates it in place when it exists. */
export async function upsertReindexSchedule(
  client: Client,
  options: ReindexScheduleOptions,
): Promise<'created' | 'updated'> {
  const handle = client.schedule.getHandle(options.scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create(scheduleOptions(options));
    return 'created';
  }
  const wanted = scheduleOptions(options);
  await handle.update((previous) => ({
    ...previous,
    spec: wanted.spec,
    action: wanted.action,
    policies: { ...previous.policies, ...wanted.policies },
    state: { ...previous.state, note: wanted.state?.note },
  }));
  // Schedule updates cannot change the memo; the cron in it is refreshed by re-creating only
  // when it differs, which update() above already applied to the spec itself.
  return 'updated';
}

export interface ScheduleSummary {
  scheduleId: string;
  cron: string[];
  timezone?: string;
  paused: boolean;
  note?: string;
  overlap: string;
  catchupWindowMs: number;
  nextRuns: string[];
  recentRuns: Array<{ scheduledAt: string; workflowId?: string }>;
  runningWorkflows: string[];
  actions: number;
}

export function summariseSchedule(scheduleId: string, d: ScheduleDescription): ScheduleSummary {
  const spec = d.spec as { cronExpressions?: string[]; timezone?: string };
  const memo = (d.memo ?? {}) as { cron?: string; timezone?: string };
  return {
    scheduleId,
    cron: spec.cronExpressions ?? (memo.cron ? [memo.cron] : []),
    timezone: spec.timezone ?? memo.timezone,
    paused: d.state.paused,
    note: d.state.note,
    overlap: String(d.policies.overlap),
    catchupWindowMs: Number(d.policies.catchupWindow),
    nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      workflowId: 'workflow' in a.action ? a.action.workflow.workflowId : undefined,
    })),
    runningWorkflows: d.info.runningActions.map((a) => a.workflow.workflowId),
    actions: d.info.numActionsTaken,
  };
}
