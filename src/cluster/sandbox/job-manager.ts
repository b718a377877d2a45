import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../observability/logger.js';
import { nodeEntrypoint, repoRoot } from '../../runtime/entrypoints.js';
import { ClusterError, type GpuJobSpec, type JobStatus, type JobTemplateName } from '../port.js';
import type { JobView } from './api.js';
import { allowedSpecEnv } from './env-policy.js';
import { readJsonTree, removeFile, writeJsonAtomic } from './json-files.js';
import { KeyedLock } from './keyed-lock.js';
import { lastProgress, tailLines } from './log-tail.js';
import { type GroupProcess, isOurProcess, signalGroup, spawnGroup, stopGroup } from './process-group.js';
import type { SandboxSecrets } from './secrets.js';

// Jobs of the sandbox cluster: a GpuJobSpec becomes a local process group, with Kubernetes
// Job semantics where the pipelines rely on them: create adopts an existing name (never a
// second launch), backoffLimit retries a failing process, activeDeadlineSeconds kills it
// and fails the Job with DeadlineExceeded, delete kills the group, finished Jobs vanish
// ttlSecondsAfterFinished later. State is persisted so the daemon can always answer. An
// attempt lost with the daemon (crash, restart) is a pod lost with its node: the next start
// relaunches the Job while backoffLimit leaves attempts, and fails it only when none is left.

export interface JobManagerOptions {
  stateDir: string;
  /** Command per template; the defaults are the simulated Jobs in ./simulated-jobs. */
  jobCommands: Partial<Record<JobTemplateName, string[]>>;
  /** Environment every Job starts from (store settings, QWENOPS_SIM_*, PATH). */
  baseEnv: NodeJS.ProcessEnv;
  /**
   * When set, every attempt gets `<flag> <dir>`: a scratch directory of its own, emptied
   * before each attempt and removed with the Job (the pod's emptyDir at /work).
   */
  workDir?: { flag: string; templates: JobTemplateName[] };
  secrets: SandboxSecrets;
  /** First retry delay; doubles per failure, capped at 30 s (Kubernetes uses 10 s). */
  retryBackoffMs: number;
  /** SIGTERM -> SIGKILL grace when killing a Job. */
  killGraceMs: number;
  logger: Logger;
  onLaunch?: (spec: GpuJobSpec) => void;
}

interface JobRecord {
  spec: GpuJobSpec;
  status: Omit<JobStatus, 'progress'>;
  launches: number;
  pid?: number;
  exitCode?: number | null;
  logFile: string;
  /** Set when the daemon stopped (SIGTERM) while the Job was active; unset after a crash. */
  interrupted?: 'stopped';
}

const LOG_TAIL_IN_MESSAGE = 20;
/**
 * The Job templates' podFailurePolicy: a container exiting with this code reported bad input
 * (arguments, model files, evaluation set) that a retry cannot fix, so the Job fails at once.
 */
export const BAD_INPUT_EXIT_CODE = 2;
/** What the command line of a Job process holds: a simulated Job, or a jobs/ entrypoint. */
const PROCESS_MARKS = ['simulated-jobs', 'qwenops_jobs.'];

export class JobManager {
  private readonly records = new Map<string, JobRecord>();
  private readonly processes = new Map<string, GroupProcess>();
  private readonly timers = new Map<
    string,
    { deadline?: NodeJS.Timeout; retry?: NodeJS.Timeout; ttl?: NodeJS.Timeout }
  >();
  private readonly lock = new KeyedLock();
  private readonly dir: string;
  /** Set by shutdown(): exits of the processes it kills are not failed attempts. */
  private stopping = false;

  constructor(private readonly options: JobManagerOptions) {
    this.dir = path.join(options.stateDir, 'jobs');
  }

  private key(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  private recordFile(namespace: string, name: string): string {
    return path.join(this.dir, namespace, `${name}.json`);
  }

  private workDir(namespace: string, name: string): string {
    return path.join(this.options.stateDir, 'work', namespace, name);
  }

  private persist(record: JobRecord): Promise<void> {
    return writeJsonAtomic(this.recordFile(record.spec.namespace, record.spec.name), record);
  }

  /**
   * Loads persisted Jobs. A Job that was active when the daemon died or stopped cannot be
   * observed any more: its process group is killed (if it outlived the daemon) and the lost
   * attempt counts as a failed one, as for a pod lost with its node. With attempts left
   * (backoffLimit) and time left (activeDeadlineSeconds) the Job is relaunched; else it fails.
   */
  async init(): Promise<void> {
    const lost: JobRecord[] = [];
    for (const record of await readJsonTree<JobRecord>(this.dir)) {
      const key = this.key(record.spec.namespace, record.spec.name);
      this.records.set(key, record);
      if (record.status.phase === 'Running' || record.status.phase === 'Pending') {
        if (record.pid && PROCESS_MARKS.some((m) => isOurProcess(record.pid as number, m)))
          signalGroup(record.pid, 'SIGKILL');
        record.pid = undefined;
        lost.push(record);
      } else {
        this.scheduleTtl(record);
      }
    }
    for (const record of lost) {
      const key = this.key(record.spec.namespace, record.spec.name);
      await this.lock.run(key, () => this.recover(key, record));
    }
  }

  /** Relaunches (or fails) a Job whose attempt the daemon lost; see init(). */
  private async recover(key: string, record: JobRecord): Promise<void> {
    const attempt = record.status.attempts;
    const limit = record.spec.backoffLimit + 1;
    // exitCode is set between a failed attempt and its retry: that attempt was not lost.
    const what =
      attempt === 0
        ? 'the sandbox daemon went down before attempt 1 started'
        : record.exitCode !== undefined
          ? `attempt ${attempt} had failed and its retry was due when the sandbox daemon went down`
          : `attempt ${attempt} was lost: ${record.interrupted === 'stopped' ? 'the sandbox daemon stopped during it' : 'the sandbox daemon restarted while it ran'}`;
    record.interrupted = undefined;
    const startedAt = record.status.startedAt ? Date.parse(record.status.startedAt) : Date.now();
    const deadlineAt = startedAt + record.spec.activeDeadlineSeconds * 1000;
    if (Date.now() >= deadlineAt) {
      this.finish(
        record,
        'Failed',
        `DeadlineExceeded: Job was active longer than specified deadline (${record.spec.activeDeadlineSeconds}s); ${what}`,
      );
    } else if (attempt >= limit) {
      this.finish(
        record,
        'Failed',
        `BackoffLimitExceeded: ${what}; no attempt left (${attempt} of ${limit})`,
      );
      this.options.logger.warn({ job: key, attempt }, 'job attempt lost with the daemon; no attempt left');
    } else {
      this.timersOf(key).deadline = setTimeout(
        () => void this.deadlineExceeded(key, record),
        deadlineAt - Date.now(),
      );
      this.options.logger.warn(
        { job: key, attempt, next: attempt + 1, of: limit },
        'job attempt lost with the daemon; relaunching it',
      );
      await this.launch(key, record);
      if (record.status.phase === 'Running')
        record.status.message = `attempt ${attempt + 1}/${limit} running (${what})`;
    }
    await this.persist(record);
  }

  private command(template: JobTemplateName): string[] {
    return (
      this.options.jobCommands[template] ?? nodeEntrypoint(`src/cluster/sandbox/simulated-jobs/${template}`)
    );
  }

  /** Secret values for the Job's env; refuses clearly when one is missing. */
  private resolveSecrets(spec: GpuJobSpec): Record<string, string> {
    const env: Record<string, string> = {};
    const missing: string[] = [];
    for (const ref of spec.secretEnv) {
      const value = this.options.secrets[ref.secretName]?.[ref.key];
      if (value === undefined) missing.push(`${ref.name} <- secret ${ref.secretName} key ${ref.key}`);
      else env[ref.name] = value;
    }
    if (missing.length > 0) {
      throw new ClusterError(
        'Invalid',
        `job ${spec.namespace}/${spec.name}: secretEnv not found in the sandbox secrets (${missing.join('; ')}); start the sandbox with QWENOPS_SANDBOX_SECRETS='{"<secretName>":{"<key>":"<value>"}}' or QWENOPS_SANDBOX_SECRETS_FILE`,
        false,
      );
    }
    return env;
  }

  async create(spec: GpuJobSpec): Promise<{ view: JobView; adopted: boolean }> {
    const key = this.key(spec.namespace, spec.name);
    return this.lock.run(key, async () => {
      const existing = this.records.get(key);
      if (existing) return { view: await this.view(existing), adopted: true };
      this.resolveSecrets(spec); // refuse before anything exists
      const record: JobRecord = {
        spec,
        status: { namespace: spec.namespace, name: spec.name, phase: 'Pending', attempts: 0 },
        launches: 0,
        logFile: path.join(this.dir, spec.namespace, `${spec.name}.log`),
      };
      await removeFile(record.logFile); // a Job deleted earlier under this name left nothing behind
      this.records.set(key, record);
      record.status.startedAt = new Date().toISOString();
      const deadline = setTimeout(
        () => void this.deadlineExceeded(key, record),
        spec.activeDeadlineSeconds * 1000,
      );
      this.timersOf(key).deadline = deadline;
      await this.launch(key, record);
      return { view: await this.view(record), adopted: false };
    });
  }

  private timersOf(key: string) {
    let t = this.timers.get(key);
    if (!t) {
      t = {};
      this.timers.set(key, t);
    }
    return t;
  }

  private clearTimers(key: string): void {
    const t = this.timers.get(key);
    if (!t) return;
    clearTimeout(t.deadline);
    clearTimeout(t.retry);
    clearTimeout(t.ttl);
    this.timers.delete(key);
  }

  private async launch(key: string, record: JobRecord): Promise<void> {
    const { spec } = record;
    let secretEnv: Record<string, string>;
    try {
      secretEnv = this.resolveSecrets(spec);
    } catch (err) {
      this.finish(record, 'Failed', (err as Error).message);
      await this.persist(record);
      return;
    }
    const attempt = record.status.attempts + 1;
    const workDir = this.workDir(spec.namespace, spec.name);
    const scratch = this.options.workDir?.templates.includes(spec.template)
      ? this.options.workDir
      : undefined;
    if (scratch) {
      await rm(workDir, { recursive: true, force: true });
      await mkdir(workDir, { recursive: true });
    }
    const argv = [...this.command(spec.template), ...spec.args, ...(scratch ? [scratch.flag, workDir] : [])];
    const env: NodeJS.ProcessEnv = {
      ...this.options.baseEnv,
      ...allowedSpecEnv(spec.env),
      ...secretEnv,
      QWENOPS_JOB_NAMESPACE: spec.namespace,
      QWENOPS_JOB_NAME: spec.name,
      QWENOPS_JOB_TEMPLATE: spec.template,
      QWENOPS_JOB_ATTEMPT: String(attempt),
      QWENOPS_WORKFLOW_ID: spec.workflowId,
    };
    const proc = spawnGroup(argv, {
      env,
      cwd: repoRoot,
      logFile: record.logFile,
      banner: `[sandbox] ${new Date().toISOString()} job ${key} attempt ${attempt}/${spec.backoffLimit + 1}: ${argv.join(' ')}`,
    });
    record.status.attempts = attempt;
    record.status.phase = 'Running';
    record.status.message = `attempt ${attempt}/${spec.backoffLimit + 1} running`;
    record.launches++;
    record.pid = proc.pid > 0 ? proc.pid : undefined;
    record.exitCode = undefined;
    this.processes.set(key, proc);
    this.options.onLaunch?.(spec);
    this.options.logger.info(
      { job: key, attempt, pid: proc.pid, template: spec.template },
      'job process started',
    );
    void proc.exited.then((exit) => this.lock.run(key, () => this.onExit(key, record, proc, exit)));
    await this.persist(record);
  }

  private async onExit(
    key: string,
    record: JobRecord,
    proc: GroupProcess,
    exit: { code: number | null; signal: NodeJS.Signals | null },
  ): Promise<void> {
    if (this.processes.get(key) === proc) this.processes.delete(key);
    // Deleted, already failed by the deadline, or killed by shutdown(): nothing to record.
    if (this.stopping || this.records.get(key) !== record || record.status.phase !== 'Running') return;
    signalGroup(proc.pid, 'SIGKILL'); // whatever the leader left behind
    record.pid = undefined;
    record.exitCode = exit.code;
    const attempt = record.status.attempts;
    if (exit.code === 0) {
      this.finish(record, 'Succeeded', `completed in ${attempt} attempt${attempt > 1 ? 's' : ''}`);
      this.options.logger.info({ job: key, attempt }, 'job succeeded');
    } else {
      const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
      if (exit.code === BAD_INPUT_EXIT_CODE) {
        const tail = await tailLines(record.logFile, LOG_TAIL_IN_MESSAGE);
        this.finish(
          record,
          'Failed',
          `PodFailurePolicy: attempt ${attempt} exited with code ${BAD_INPUT_EXIT_CODE} (bad input; not retried); last log lines:\n${tail}`,
        );
      } else if (attempt <= record.spec.backoffLimit) {
        const delay = Math.min(30_000, this.options.retryBackoffMs * 2 ** (attempt - 1));
        record.status.message = `attempt ${attempt} failed (${how}); retrying in ${delay} ms`;
        this.timersOf(key).retry = setTimeout(
          () =>
            void this.lock.run(key, async () => {
              if (this.records.get(key) === record && record.status.phase === 'Running')
                await this.launch(key, record);
            }),
          delay,
        );
      } else {
        const tail = await tailLines(record.logFile, LOG_TAIL_IN_MESSAGE);
        this.finish(
          record,
          'Failed',
          `BackoffLimitExceeded: attempt ${attempt} of ${record.spec.backoffLimit + 1} failed (${how}); last log lines:\n${tail}`,
        );
      }
      this.options.logger.warn(
        { job: key, attempt, code: exit.code, signal: exit.signal },
        'job attempt failed',
      );
    }
    await this.persist(record);
  }

  private async deadlineExceeded(key: string, record: JobRecord): Promise<void> {
    await this.lock.run(key, async () => {
      if (this.records.get(key) !== record || record.status.phase !== 'Running') return;
      this.finish(
        record,
        'Failed',
        `DeadlineExceeded: Job was active longer than specified deadline (${record.spec.activeDeadlineSeconds}s)`,
      );
      const proc = this.processes.get(key);
      this.processes.delete(key);
      record.pid = undefined;
      await this.persist(record);
      this.options.logger.warn({ job: key }, 'job deadline exceeded; killing it');
      void stopGroup(proc, this.options.killGraceMs);
    });
  }

  private finish(record: JobRecord, phase: 'Succeeded' | 'Failed', message: string): void {
    const key = this.key(record.spec.namespace, record.spec.name);
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t.deadline);
      clearTimeout(t.retry);
    }
    record.status.phase = phase;
    record.status.finishedAt = new Date().toISOString();
    record.status.message = message;
    this.scheduleTtl(record);
    if (this.options.workDir) {
      void rm(this.workDir(record.spec.namespace, record.spec.name), { recursive: true, force: true });
    }
  }

  private scheduleTtl(record: JobRecord): void {
    const key = this.key(record.spec.namespace, record.spec.name);
    const finishedAt = record.status.finishedAt ? Date.parse(record.status.finishedAt) : Date.now();
    const due = finishedAt + record.spec.ttlSecondsAfterFinished * 1000 - Date.now();
    const t = this.timersOf(key);
    clearTimeout(t.ttl);
    t.ttl = setTimeout(() => void this.delete(record.spec.namespace, record.spec.name), Math.max(0, due));
    t.ttl.unref();
  }

  private async view(record: JobRecord): Promise<JobView> {
    const status: JobStatus = { ...record.status };
    const progress = await lastProgress(record.logFile);
    if (progress) status.progress = progress;
    const view: JobView = { spec: record.spec, status, launches: record.launches, logFile: record.logFile };
    if (record.pid) view.pid = record.pid;
    if (record.exitCode !== undefined) view.exitCode = record.exitCode;
    return view;
  }

  async get(namespace: string, name: string): Promise<JobView | undefined> {
    const record = this.records.get(this.key(namespace, name));
    return record ? this.view(record) : undefined;
  }

  async list(): Promise<JobView[]> {
    return Promise.all([...this.records.values()].map((r) => this.view(r)));
  }

  async logs(namespace: string, name: string, lines: number): Promise<string | undefined> {
    const record = this.records.get(this.key(namespace, name));
    return record ? tailLines(record.logFile, lines) : undefined;
  }

  /** Kills the Job's process group and forgets it; false when there was no such Job. */
  async delete(namespace: string, name: string): Promise<boolean> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const record = this.records.get(key);
      if (!record) return false;
      this.records.delete(key);
      this.clearTimers(key);
      const proc = this.processes.get(key);
      this.processes.delete(key);
      const stopped = stopGroup(proc, this.options.killGraceMs); // SIGTERM goes out before this returns
      if (this.options.workDir)
        void stopped.then(() => rm(this.workDir(namespace, name), { recursive: true, force: true }));
      await removeFile(this.recordFile(namespace, name));
      await removeFile(record.logFile);
      this.options.logger.info({ job: key, killed: proc !== undefined }, 'job deleted');
      return true;
    });
  }

  /** Daemon shutdown: every running Job is killed; its attempt is recorded as interrupted. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    const stops: Promise<void>[] = [];
    for (const [key, proc] of this.processes) {
      const record = this.records.get(key);
      if (record?.status.phase === 'Running') {
        // Left active on disk: the next start relaunches it while attempts are left (init).
        record.interrupted = 'stopped';
        record.status.message = `attempt ${record.status.attempts} interrupted: the sandbox daemon stopped during it`;
        record.pid = undefined;
        stops.push(this.persist(record));
      }
      stops.push(stopGroup(proc, this.options.killGraceMs));
    }
    this.processes.clear();
    for (const key of [...this.timers.keys()]) this.clearTimers(key);
    await Promise.all(stops);
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = { Pending: 0, Running: 0, Succeeded: 0, Failed: 0 };
    for (const r of this.records.values()) counts[r.status.phase] = (counts[r.status.phase] ?? 0) + 1;
    return counts;
  }
}
