import {
  type Client,
  type ScheduleDescription,
  ScheduleNotFoundError,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { SEARCH_ATTRIBUTES, TASK_QUEUES } from '../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../workflows/index.js';
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
  // Typed by the workflow function: its arguments are checked here, at compile time.
  const action: ScheduleOptionsStartWorkflowAction<typeof reindexKnowledgeBase> = {
    type: 'startWorkflow',
    workflowType: reindexKnowledgeBase,
    taskQueue: TASK_QUEUES.default,
    // The server appends the scheduled time, so each run has its own id.
    workflowId: `reindex-${options.request.table}`,
    args: [{ request: { ...options.request, requestedBy: options.request.requestedBy ?? 'schedule' } }],
    typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.service, value: `knowledge/${options.request.table}` }],
  };
  return {
    scheduleId: options.scheduleId,
    spec: { cronExpressions: [options.cron], timezone: options.timezone },
    action,
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: options.catchupWindowMs },
    state: {
      paused: options.paused ?? false,
      note: options.note ?? 'nightly knowledge-base re-index (qwenops)',
    },
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
  /** Runs not started because one was still running (overlap policy SKIP). */
  skippedOverlap: number;
}

export function summariseSchedule(scheduleId: string, d: ScheduleDescription): ScheduleSummary {
  const spec = d.spec as { calendars?: CalendarSpec[]; timezone?: string };
  return {
    scheduleId,
    cron: (spec.calendars ?? []).map(calendarToCron),
    timezone: spec.timezone,
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
    skippedOverlap: d.info.numActionsSkippedOverlap,
  };
}

interface RangeSpec {
  start: number | string;
  end?: number | string;
  step?: number;
}
interface CalendarSpec {
  minute?: RangeSpec[];
  hour?: RangeSpec[];
  dayOfMonth?: RangeSpec[];
  month?: RangeSpec[];
  dayOfWeek?: RangeSpec[];
}

const MONTHS = [
  'JANUARY',
  'FEBRUARY',
  'MARCH',
  'APRIL',
  'MAY',
  'JUNE',
  'JULY',
  'AUGUST',
  'SEPTEMBER',
  'OCTOBER',
  'NOVEMBER',
  'DECEMBER',
];
const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];

/** The server stores a cron expression as a calendar spec; this writes it back as cron for people. */
export function calendarToCron(calendar: CalendarSpec): string {
  const field = (ranges: RangeSpec[] | undefined, min: number, max: number, names?: string[]) => {
    const value = (v: number | string) =>
      typeof v === 'string' && names ? names.indexOf(v) + (names === MONTHS ? 1 : 0) : Number(v);
    if (!ranges || ranges.length === 0) return '*';
    return ranges
      .map((r) => {
        const start = value(r.start);
        const end = r.end === undefined ? start : value(r.end);
        const step = r.step && r.step > 1 ? `/${r.step}` : '';
        if (start === min && end === max) return `*${step}`;
        return start === end ? `${start}` : `${start}-${end}${step}`;
      })
      .join(',');
  };
  return [
    field(calendar.minute, 0, 59),
    field(calendar.hour, 0, 23),
    field(calendar.dayOfMonth, 1, 31),
    field(calendar.month, 1, 12, MONTHS),
    field(calendar.dayOfWeek, 0, 6, DAYS),
  ].join(' ');
}
