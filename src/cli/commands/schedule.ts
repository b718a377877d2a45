import { ScheduleOverlapPolicy } from '@temporalio/client';
import { type Command, Option } from 'commander';
import { REINDEX_MODES } from '../../domain/knowledge.js';
import { InputValidationError } from '../../domain/validation.js';
import type { CliContext } from '../context.js';
import { durationMs, parseDuration } from '../durations.js';
import { defaultScheduleId, summariseSchedule, upsertReindexSchedule } from '../knowledge-schedule.js';
import type { CommandGroup } from './index.js';
import { reindexRequestFromFlags } from './kb.js';

// `qwenops schedule`: the knowledge-base re-index as a Temporal Schedule.
//   schedule reindex --cron "0 2 * * *" --timezone Asia/Shanghai --dir ./kb   create or update
//   schedule describe | pause | unpause | trigger | backfill --from --to        operate it

const CRON = /^(\S+\s+){4}\S+$/;

/** "30m", "1h", "2d" -> ms. */
export function parseWindow(text: string): number {
  return durationMs(
    parseDuration(text, {
      units: ['s', 'm', 'h', 'd'],
      decimals: false,
      spaced: false,
      message: 'must be a duration like 30m, 6h or 1d',
    }),
  );
}

function validTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function parseDate(flag: string, text: string): Date {
  const date = new Date(text);
  if (Number.isNaN(date.getTime()))
    throw new InputValidationError('backfill', [
      {
        path: flag,
        message: `${JSON.stringify(text)} is not a date (ISO 8601, e.g. 2026-01-31T02:00:00+08:00)`,
      },
    ]);
  return date;
}

export const registerScheduleCommands: CommandGroup = (program: Command, context: () => CliContext) => {
  const schedule = program
    .command('schedule')
    .description('Temporal Schedules: the nightly knowledge-base re-index');
  const idOption = () => new Option('--id <scheduleId>', 'schedule id (default: qwenops-kb-reindex-<table>)');
  const tableOption = () => new Option('--table <name>', 'knowledge table').default('qwen_knowledge');
  const handleFor = async (opts: { id?: string; table: string }) => {
    const client = await context().client();
    const id = opts.id ?? defaultScheduleId(opts.table);
    return { id, handle: client.schedule.getHandle(id) };
  };
  const printSummary = async (opts: { id?: string; table: string }, headline: string) => {
    const { id, handle } = await handleFor(opts);
    const summary = summariseSchedule(id, await handle.describe());
    context().print(summary, () =>
      [
        `${headline}: ${id}${summary.paused ? ' (paused)' : ''}`,
        `  cron ${summary.cron.join(', ') || '?'} ${summary.timezone ?? 'UTC'}; overlap ${summary.overlap}; catch-up window ${summary.catchupWindowMs / 60_000} min`,
        `  next: ${summary.nextRuns.join(', ') || '-'}`,
        `  recent: ${summary.recentRuns.map((r) => `${r.scheduledAt} ${r.workflowId ?? ''}`).join('; ') || '-'}`,
        `  running: ${summary.runningWorkflows.join(', ') || '-'}`,
      ].join('\n'),
    );
  };

  schedule
    .command('reindex')
    .description('create or update the knowledge-base re-index schedule (overlapping runs are skipped)')
    .requiredOption('--cron <expr>', 'five-field cron expression, e.g. "0 2 * * *"')
    .option('--timezone <zone>', 'IANA time zone of the cron expression', 'Asia/Shanghai')
    .option('--dir <path>', 'local directory of documents (must exist on the workers)')
    .option('--prefix <prefix>', 'prefix in the artifact store bucket')
    .addOption(
      new Option('--mode <mode>', 'incremental, full or auto')
        .choices([...REINDEX_MODES])
        .default('incremental'),
    )
    .addOption(tableOption())
    .addOption(idOption())
    .option(
      '--catchup-window <duration>',
      'start runs missed during an outage up to this long ago',
      parseWindow,
      parseWindow('6h'),
    )
    .option('--paused', 'create it paused')
    .action(
      async (opts: {
        cron: string;
        timezone: string;
        dir?: string;
        prefix?: string;
        mode: string;
        table: string;
        id?: string;
        catchupWindow: number;
        paused?: boolean;
      }) => {
        const issues = [];
        if (!CRON.test(opts.cron.trim()))
          issues.push({
            path: '--cron',
            message: 'must have five fields: minute hour day-of-month month day-of-week',
          });
        if (!validTimezone(opts.timezone))
          issues.push({
            path: '--timezone',
            message: `${JSON.stringify(opts.timezone)} is not an IANA time zone (e.g. Asia/Shanghai)`,
          });
        if (issues.length > 0) throw new InputValidationError('schedule', issues);
        const request = reindexRequestFromFlags(opts, 'schedule');
        const client = await context().client();
        const scheduleId = opts.id ?? defaultScheduleId(opts.table);
        const outcome = await upsertReindexSchedule(client, {
          scheduleId,
          cron: opts.cron.trim(),
          timezone: opts.timezone,
          request: { ...request, table: opts.table },
          catchupWindowMs: opts.catchupWindow,
          paused: opts.paused,
        });
        await printSummary({ id: scheduleId, table: opts.table }, outcome);
      },
    );

  schedule
    .command('describe')
    .description('show the schedule: cron, next and recent runs, running workflow')
    .addOption(tableOption())
    .addOption(idOption())
    .action((opts: { id?: string; table: string }) => printSummary(opts, 'schedule'));

  schedule
    .command('pause')
    .description('stop starting new runs (a running one continues)')
    .option('--note <text>', 'why', 'paused from the qwenops CLI')
    .addOption(tableOption())
    .addOption(idOption())
    .action(async (opts: { id?: string; table: string; note: string }) => {
      await (await handleFor(opts)).handle.pause(opts.note);
      await printSummary(opts, 'paused');
    });

  schedule
    .command('unpause')
    .description('start runs on schedule again')
    .option('--note <text>', 'why', 'unpaused from the qwenops CLI')
    .addOption(tableOption())
    .addOption(idOption())
    .action(async (opts: { id?: string; table: string; note: string }) => {
      await (await handleFor(opts)).handle.unpause(opts.note);
      await printSummary(opts, 'unpaused');
    });

  schedule
    .command('trigger')
    .description('start a run now (skipped if one is running: overlap policy)')
    .addOption(tableOption())
    .addOption(idOption())
    .action(async (opts: { id?: string; table: string }) => {
      // The SDK's trigger() allows overlaps unless told otherwise; a re-index must not.
      await (await handleFor(opts)).handle.trigger(ScheduleOverlapPolicy.SKIP);
      await printSummary(opts, 'triggered');
    });

  schedule
    .command('backfill')
    .description('run the schedule for a past time range (e.g. nights missed while it was paused)')
    .requiredOption('--from <date>', 'start of the range (ISO 8601)')
    .requiredOption('--to <date>', 'end of the range (ISO 8601)')
    .addOption(tableOption())
    .addOption(idOption())
    .action(async (opts: { id?: string; table: string; from: string; to: string }) => {
      const start = parseDate('--from', opts.from);
      const end = parseDate('--to', opts.to);
      if (end <= start)
        throw new InputValidationError('backfill', [{ path: '--to', message: 'must be after --from' }]);
      // Backfilled runs of a re-index would only queue behind each other: one per range is enough.
      await (await handleFor(opts)).handle.backfill({ start, end, overlap: ScheduleOverlapPolicy.SKIP });
      await printSummary(opts, 'backfilled');
    });
};
