import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../../../src/cli/main.js';

// examples/ci: valid YAML, a concurrency group per service, Temporal and cluster secrets, the
// canary step with a derived release id, JUnit and summary output, the report kept as an
// artifact, and only flags the CLI has.

const root = path.resolve(import.meta.dirname, '../../..');
/** A GitHub Actions expression, `${{ expr }}`. */
const gh = (expr: string) => `\${{ ${expr} }}`;
const read = (name: string) => readFileSync(path.join(root, 'examples/ci', name), 'utf8');

/** The `qwenops ...` command lines of a script (continuations and folded scalars joined). */
function qwenopsCommands(script: string): string[][] {
  return script
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^qwenops\s/.test(l))
    .map((l) => l.split(/\s+/));
}

function flagsOf(command: Command): Set<string> {
  return new Set(command.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => Boolean(f)));
}

const { program } = buildProgram();
const globalFlags = flagsOf(program);
const canary = program.commands.find((c) => c.name() === 'canary') as Command;

function expectKnownCanaryCall(args: string[]) {
  expect(args).toContain('canary');
  const canaryFlags = flagsOf(canary);
  const flags = args.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0] as string);
  for (const flag of flags) {
    if (flag === '>') continue;
    expect(canaryFlags.has(flag) || globalFlags.has(flag), `qwenops canary has no ${flag}`).toBe(true);
  }
  for (const needed of ['--service', '--release', '--wait', '--junit', '--summary', '--abort-on-cancel'])
    expect(flags).toContain(needed);
}

describe('examples/ci/github-actions.yml', () => {
  const doc = parse(read('github-actions.yml')) as {
    jobs: Record<
      string,
      {
        concurrency: { group: string; 'cancel-in-progress': boolean };
        strategy: { matrix: { service: string[] } };
        env: Record<string, string>;
        steps: Array<{ run?: string; uses?: string; if?: string; with?: Record<string, string> }>;
      }
    >;
  };
  const job = doc.jobs.canary as (typeof doc.jobs)[string];

  it('has one concurrency group per service and never cancels a release in progress', () => {
    expect(job.concurrency.group).toContain(gh('matrix.service'));
    expect(job.concurrency['cancel-in-progress']).toBe(false);
    expect(job.strategy.matrix.service.length).toBeGreaterThan(0);
  });

  it('takes Temporal and cluster credentials from secrets', () => {
    for (const name of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_API_KEY'])
      expect(job.env[name]).toMatch(/^\$\{\{ secrets\.\w+ \}\}$/);
    expect(job.env.AWS_SECRET_ACCESS_KEY).toMatch(/secrets\./);
  });

  it('runs the canary with a release id from the commit, JUnit, the step summary, and existing flags', () => {
    const calls = job.steps.flatMap((s) => (s.run ? qwenopsCommands(s.run) : []));
    expect(calls).toHaveLength(1);
    const args = calls[0] as string[];
    expectKnownCanaryCall(args);
    expect(args.join(' ')).toContain(`--release "${gh('github.sha')}"`);
    expect(args[args.indexOf('--summary') + 1]).toBe('"$GITHUB_STEP_SUMMARY"');
  });

  it('uploads the reports as an artifact even when the release fails', () => {
    const upload = job.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'));
    expect(upload?.if).toBe('always()');
    expect(upload?.with?.path).toBe('reports/');
  });
});

describe('examples/ci/gitlab-ci.yml', () => {
  const doc = parse(read('gitlab-ci.yml')) as Record<
    string,
    {
      resource_group: string;
      variables: Record<string, string>;
      script: string[];
      artifacts: { when: string; paths: string[]; reports: { junit: string } };
    }
  >;
  const job = doc.canary as (typeof doc)[string];

  it('serialises releases per service with a resource group', () => {
    expect(job.resource_group).toBe(`qwenops-canary-${job.variables.QWENOPS_SERVICE?.replace('/', '-')}`);
  });

  it('runs the canary with a release id from the commit and existing flags', () => {
    const calls = job.script.flatMap((line) => qwenopsCommands(line));
    expect(calls).toHaveLength(1);
    const args = calls[0] as string[];
    expectKnownCanaryCall(args);
    expect(args[args.indexOf('--release') + 1]).toBe('"$CI_COMMIT_SHA"');
    expect(job.variables.AWS_SECRET_ACCESS_KEY).toBe('$MODELS_S3_SECRET_KEY');
  });

  it('keeps the reports as artifacts and the JUnit file as the test report', () => {
    expect(job.artifacts.when).toBe('always');
    expect(job.artifacts.paths).toContain('reports/');
    expect(job.artifacts.reports.junit).toBe('reports/canary-junit.xml');
  });
});
