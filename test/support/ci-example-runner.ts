import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';

// Runs the shell steps of a CI example (examples/ci) on this host, in order, the way its CI
// platform would: GitHub Actions `run:` steps with their `if:` conditions, GitLab CI `script:`
// (one shell, stops at the first failing command) then `after_script:` (always, its own shell).
// Each shell is `bash -e`, in a workspace directory, with the job's environment: the
// platform's predefined variables, the secrets/variables the test provides, and the job's own
// env/variables with the platform's expansion applied. Nothing else of this host's
// environment goes in but PATH, HOME and TMPDIR (a runner has its own).
//
// What the platform does itself is not a shell step and is not run: `uses:` actions
// (checkout, setup-node, upload-artifact; the artifacts are returned for the test to check),
// `image:`, `rules:`, `resource_group:`, `retry:`. A shell line that only provisions the
// runner image is skipped when the caller names it in `skipLines` (exact patterns), and the
// result lists every skipped line.

export interface StepResult {
  name: string;
  /** null: not run (an earlier step failed and this one has no `if: always()`). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface JobResult {
  steps: StepResult[];
  /** Shell lines skipped as runner provisioning (skipLines matched them). */
  skipped: string[];
  /** `uses:` actions the platform would run, in order. */
  actions: string[];
  /** The job's verdict as the platform decides it: passed unless a (non-after_script) step failed. */
  passed: boolean;
  /** Files the job keeps as artifacts (relative to the workspace). */
  artifactPaths: string[];
  /** GitLab `artifacts.reports.junit`. */
  junitReport?: string;
}

export interface RunOptions {
  /** Workspace (the checkout): the steps run here. */
  workspace: string;
  /** Values of secrets / CI variables (GitHub `secrets.*` and `vars.*`; GitLab project variables). */
  secrets: Record<string, string>;
  /** The commit being released. */
  sha: string;
  /** More environment every step gets (e.g. the npm prefix the runner installs into). */
  env?: Record<string, string>;
  /** Lines that only provision the runner image, skipped; each must match some line. */
  skipLines?: RegExp[];
  /** Per-shell deadline (generous: a busy host). */
  timeoutMs?: number;
}

/** The runner's own directory beside the workspace: step scripts, $GITHUB_STEP_SUMMARY, $RUNNER_TEMP. */
function runnerDirOf(workspace: string): string {
  return path.join(path.dirname(workspace), `${path.basename(workspace)}-runner`);
}

const BASE_ENV_KEYS = ['PATH', 'HOME', 'TMPDIR', 'LANG'] as const;

function baseEnv(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of BASE_ENV_KEYS) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

async function runShell(
  name: string,
  script: string,
  options: { cwd: string; env: Record<string, string>; timeoutMs: number; scriptDir: string; seq: number },
): Promise<StepResult> {
  const file = path.join(options.scriptDir, `${options.seq}-${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.sh`);
  await writeFile(file, script);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', '-e', file], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      if (process.env.QWENOPS_TEST_ECHO_CI) process.stderr.write(`[${name}] ${d}`);
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {}
      reject(new Error(`step "${name}" still running after ${options.timeoutMs} ms:\n${stderr}\n${stdout}`));
    }, options.timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({
        name,
        exitCode: code ?? (signal ? 128 : null),
        stdout,
        stderr,
        seconds: (Date.now() - started) / 1000,
      });
    });
  });
}

/** Drops the lines skipLines names (recording them); a pattern that matches nothing is an error. */
function dropProvisioning(lines: string[], skipLines: RegExp[], skipped: string[]): string[] {
  return lines.filter((line) => {
    if (!skipLines.some((re) => re.test(line.trim()))) return true;
    skipped.push(line.trim());
    return false;
  });
}

function checkAllUsed(skipLines: RegExp[], skipped: string[]): void {
  for (const re of skipLines) {
    if (!skipped.some((line) => re.test(line)))
      throw new Error(`skip pattern ${re} matches no line of the example`);
  }
}

// ---------------------------------------------------------------------------------------
// GitHub Actions

interface GithubStep {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  env?: Record<string, string>;
  shell?: string;
  with?: Record<string, unknown>;
}

interface GithubJob {
  env?: Record<string, string>;
  strategy?: { matrix?: Record<string, unknown[]> };
  steps: GithubStep[];
}

/**
 * Evaluates the `${{ ctx.name }}` expressions GitHub substitutes before the shell sees a
 * script: secrets and vars (unset ones are empty, as on GitHub), matrix, github.sha and
 * strategy.job-index. Any other expression is an error, so an example cannot use one the
 * test does not provide.
 */
function githubExpand(text: string, ctx: Record<string, Record<string, string>>): string {
  return text.replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (whole, expr: string) => {
    const m = /^([a-z]+)\.([A-Za-z0-9_-]+)$/.exec(expr);
    const scope = m ? ctx[m[1] as string] : undefined;
    if (!m || !scope) throw new Error(`unsupported GitHub expression ${whole}`);
    const value = scope[m[2] as string];
    if (value !== undefined) return value;
    if (m[1] === 'secrets' || m[1] === 'vars') return '';
    throw new Error(`GitHub expression ${whole} has no value`);
  });
}

export async function runGithubJob(file: string, jobName: string, options: RunOptions): Promise<JobResult> {
  const doc = parse(readFileSync(file, 'utf8')) as { jobs: Record<string, GithubJob> };
  const job = doc.jobs[jobName];
  if (!job) throw new Error(`${file} has no job ${jobName}`);
  const matrix: Record<string, string> = {};
  for (const [key, values] of Object.entries(job.strategy?.matrix ?? {})) matrix[key] = String(values[0]);
  const ctx: Record<string, Record<string, string>> = {
    secrets: options.secrets,
    vars: options.secrets,
    matrix,
    github: { sha: options.sha },
    strategy: { 'job-index': '0' },
  };
  const runnerDir = runnerDirOf(options.workspace);
  await mkdir(runnerDir, { recursive: true });
  const summary = path.join(runnerDir, 'step_summary.md');
  await writeFile(summary, '');
  const jobEnv: Record<string, string> = {
    ...baseEnv(options.env),
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_SHA: options.sha,
    GITHUB_WORKSPACE: options.workspace,
    GITHUB_STEP_SUMMARY: summary,
    RUNNER_TEMP: runnerDir,
  };
  for (const [k, v] of Object.entries(job.env ?? {})) jobEnv[k] = githubExpand(String(v), ctx);

  const skipLines = options.skipLines ?? [];
  const result: JobResult = { steps: [], skipped: [], actions: [], passed: true, artifactPaths: [] };
  for (const [i, step] of job.steps.entries()) {
    const name = step.name ?? step.uses ?? `step ${i + 1}`;
    const condition = (step.if ?? 'success()').replace(/^\$\{\{\s*|\s*\}\}$/g, '').trim();
    const runs =
      condition === 'always()'
        ? true
        : condition === 'success()'
          ? result.passed
          : condition === 'failure()'
            ? !result.passed
            : undefined;
    if (runs === undefined) throw new Error(`step "${name}": unsupported if: ${step.if}`);
    if (step.uses) {
      if (runs) result.actions.push(step.uses);
      if (runs && step.uses.startsWith('actions/upload-artifact')) {
        result.artifactPaths.push(String(step.with?.path ?? ''));
      }
      continue;
    }
    if (step.run === undefined) throw new Error(`step "${name}" has neither uses nor run`);
    if (step.shell !== undefined && step.shell !== 'bash')
      throw new Error(`step "${name}": shell ${step.shell}`);
    if (!runs) {
      result.steps.push({ name, exitCode: null, stdout: '', stderr: '', seconds: 0 });
      continue;
    }
    const script = dropProvisioning(githubExpand(step.run, ctx).split('\n'), skipLines, result.skipped).join(
      '\n',
    );
    const env = { ...jobEnv };
    for (const [k, v] of Object.entries(step.env ?? {})) env[k] = githubExpand(String(v), ctx);
    const r = await runShell(name, script, {
      seq: i + 1,
      cwd: options.workspace,
      env,
      timeoutMs: options.timeoutMs ?? 600_000,
      scriptDir: runnerDir,
    });
    result.steps.push(r);
    if (r.exitCode !== 0) result.passed = false;
  }
  checkAllUsed(skipLines, result.skipped);
  return result;
}

/** The file GitHub's `$GITHUB_STEP_SUMMARY` pointed at in a job run in `workspace`. */
export function githubStepSummaryOf(workspace: string): string {
  return path.join(runnerDirOf(workspace), 'step_summary.md');
}

// ---------------------------------------------------------------------------------------
// GitLab CI

interface GitlabJob {
  variables?: Record<string, string>;
  before_script?: string[];
  script: string[];
  after_script?: string[];
  artifacts?: { paths?: string[]; reports?: { junit?: string } };
}

/** GitLab's expansion of `$VAR` / `${VAR}` in variable values (unknown ones are empty). */
function gitlabExpand(text: string, env: Record<string, string>): string {
  return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_w, a, b) => {
    return env[(a ?? b) as string] ?? '';
  });
}

export async function runGitlabJob(file: string, jobName: string, options: RunOptions): Promise<JobResult> {
  const doc = parse(readFileSync(file, 'utf8')) as Record<string, GitlabJob>;
  const job = doc[jobName];
  if (!job) throw new Error(`${file} has no job ${jobName}`);
  const runnerDir = runnerDirOf(options.workspace);
  await mkdir(runnerDir, { recursive: true });
  const env: Record<string, string> = {
    ...baseEnv(options.env),
    CI: 'true',
    GITLAB_CI: 'true',
    CI_COMMIT_SHA: options.sha,
    CI_COMMIT_SHORT_SHA: options.sha.slice(0, 8),
    CI_PROJECT_DIR: options.workspace,
    CI_JOB_NAME: jobName,
    ...options.secrets,
  };
  for (const [k, v] of Object.entries(job.variables ?? {})) env[k] = gitlabExpand(String(v), env);

  const skipLines = options.skipLines ?? [];
  const result: JobResult = {
    steps: [],
    skipped: [],
    actions: [],
    passed: true,
    artifactPaths: job.artifacts?.paths ?? [],
    junitReport: job.artifacts?.reports?.junit,
  };
  const shellOptions = {
    cwd: options.workspace,
    timeoutMs: options.timeoutMs ?? 600_000,
    scriptDir: runnerDir,
  };
  // before_script and script: one shell; the first failing command fails the job.
  const main = dropProvisioning([...(job.before_script ?? []), ...job.script], skipLines, result.skipped);
  const r = await runShell('script', `${main.join('\n')}\n`, { ...shellOptions, seq: 1, env });
  result.steps.push(r);
  result.passed = r.exitCode === 0;
  // after_script: always, in a new shell, with the job's status; it does not change the verdict.
  if (job.after_script) {
    const after = dropProvisioning(job.after_script, skipLines, result.skipped);
    result.steps.push(
      await runShell('after_script', `${after.join('\n')}\n`, {
        ...shellOptions,
        seq: 2,
        env: { ...env, CI_JOB_STATUS: result.passed ? 'success' : 'failed' },
      }),
    );
  }
  checkAllUsed(skipLines, result.skipped);
  return result;
}
