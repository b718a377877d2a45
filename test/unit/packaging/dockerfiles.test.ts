import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { K8S_DIR, kustomizationObjects, type Manifest } from '../../support/k8s-manifests.js';
import { readYamlDocuments } from '../../support/kube.js';

// The Dockerfiles, read with a small parser (no container engine here, so nothing is
// built): every base image pinned by digest, the final stage running as a numeric non-root
// user (the one the k8s manifests running the image expect), and for the worker image, a
// build stage and a runtime stage with production dependencies and dist/ only.

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  /** FROM's image after substituting the global ARG defaults. */
  image: string;
  name?: string;
  instructions: Instruction[];
}

interface Dockerfile {
  args: Map<string, string>;
  stages: Stage[];
}

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const result: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (pending && line.startsWith('#')) return;
    if (!pending) start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trimEnd()} `;
      return;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m)
      result.push({ keyword: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start });
  });
  if (pending) throw new Error('dangling line continuation');
  return result;
}

function substitute(value: string, args: Map<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b) as string;
    const resolved = args.get(name);
    if (resolved === undefined) throw new Error(`FROM uses ARG ${name}, which has no default`);
    return resolved;
  });
}

function parseDockerfile(file: string): Dockerfile {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions(readFileSync(file, 'utf8'))) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith('--platform='));
      const from = words[0] as string;
      const name = words[1]?.toUpperCase() === 'AS' ? words[2] : undefined;
      stages.push({ from, image: substitute(from, args), name, instructions: [] });
    } else if (stages.length === 0) {
      // Only ARG (and parser directives, which are comments) may precede the first FROM.
      if (instruction.keyword !== 'ARG') throw new Error(`${instruction.keyword} before FROM`);
      const m = /^(\w+)(?:=(.*))?$/.exec(instruction.args);
      if (m?.[2] !== undefined) args.set(m[1] as string, m[2].replace(/^"(.*)"$/, '$1'));
    } else {
      (stages.at(-1) as Stage).instructions.push(instruction);
    }
  }
  return { args, stages };
}

const finalStage = (d: Dockerfile): Stage => d.stages.at(-1) as Stage;
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

/** `USER uid[:gid]` of a stage (its last), as numbers; undefined where the user is a name. */
function finalUser(stage: Stage): { uid?: number; gid?: number; raw?: string } {
  const raw = of(stage, 'USER').at(-1)?.args;
  if (raw === undefined) return {};
  const [uid, gid] = raw.split(':');
  return {
    raw,
    uid: /^\d+$/.test(uid ?? '') ? Number(uid) : undefined,
    gid: gid === undefined ? undefined : /^\d+$/.test(gid) ? Number(gid) : Number.NaN,
  };
}

/** runAsUser of every pod spec (and container) that runs `image` (name without tag). */
function runAsUsersOf(objects: Manifest[], image: string): number[] {
  const users: number[] = [];
  for (const object of objects) {
    const pod = object.spec?.template?.spec ?? object.spec?.jobTemplate?.spec?.template?.spec;
    if (!pod) continue;
    for (const container of pod.containers ?? []) {
      if (String(container.image).split(':')[0] !== image) continue;
      const uid = container.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
      if (uid !== undefined) users.push(uid);
    }
  }
  return users;
}

const DIGEST = /@sha256:[0-9a-f]{64}$/;

const WORKER = path.join(repoRoot, 'Dockerfile');
const JOBS = path.join(repoRoot, 'jobs', 'Dockerfile');
const SERVING = path.join(repoRoot, 'serving', 'Dockerfile');
const ALL = [WORKER, JOBS, SERVING];

describe('the parser', () => {
  it('joins continuations and skips comments, also inside a continued instruction', () => {
    const parsed = instructions(
      ['# c', 'ARG A=x@sha256:1', `FROM ${'$'}{A} AS b`, 'RUN a \\', '  # inside', '  && b'].join('\n'),
    );
    expect(parsed.map((i) => [i.keyword, i.args])).toEqual([
      ['ARG', 'A=x@sha256:1'],
      ['FROM', `${'$'}{A} AS b`],
      ['RUN', 'a && b'],
    ]);
  });
});

describe.each(ALL.map((file) => [path.relative(repoRoot, file), file]))('%s', (_name, file) => {
  const dockerfile = parseDockerfile(file);

  it('pins every base image by digest (FROM a build stage excepted)', () => {
    expect(dockerfile.stages.length).toBeGreaterThan(0);
    const stageNames = new Set(dockerfile.stages.map((s) => s.name).filter(Boolean));
    for (const stage of dockerfile.stages) {
      if (stageNames.has(stage.image)) continue;
      expect(stage.image, `FROM ${stage.from}`).toMatch(DIGEST);
    }
  });

  it('runs the final stage as a numeric, non-root user and group', () => {
    const user = finalUser(finalStage(dockerfile));
    expect(user.raw, 'final stage has no USER').toBeDefined();
    expect(user.uid, `USER ${user.raw} must be numeric`).toBeTypeOf('number');
    expect(user.uid).not.toBe(0);
    if (user.gid !== undefined) {
      expect(user.gid).not.toBeNaN();
      expect(user.gid).not.toBe(0);
    }
  });

  it('installs no dev dependencies in the final stage', () => {
    for (const run of of(finalStage(dockerfile), 'RUN')) {
      for (const m of run.args.matchAll(/\bnpm\s+(ci|install|i)\b([^&;|]*)/g)) {
        expect(m[2], `line ${run.line}: ${m[0]}`).toMatch(/--omit=dev\b/);
      }
    }
  });
});

describe('the worker image (Dockerfile)', () => {
  const dockerfile = parseDockerfile(WORKER);
  const [build, runtime] = dockerfile.stages;

  it('is multi-stage: a build stage compiles, the runtime stage copies dist/ from it', () => {
    expect(dockerfile.stages).toHaveLength(2);
    expect(build?.name).toBeDefined();
    expect(of(build as Stage, 'RUN').map((r) => r.args)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^npm ci\b/), 'npm run build']),
    );
    const copies = of(runtime as Stage, 'COPY').map((c) => c.args);
    expect(copies).toContain(`--from=${build?.name} /src/dist ./dist`);
    // Nothing of the TypeScript sources, nor the build stage's node_modules.
    for (const copy of copies)
      expect(copy).not.toMatch(/\b(src|workflows|activities|workers)\s|node_modules/);
  });

  it('runs as the uid the worker Deployments set (k8s/base/workers.yaml)', () => {
    const users = runAsUsersOf(kustomizationObjects(path.join(K8S_DIR, 'base')), 'ghcr.io/qwenops/worker');
    expect(users.length).toBeGreaterThan(0);
    expect(new Set(users)).toEqual(new Set([finalUser(runtime as Stage).uid]));
  });

  it('defaults to a worker entrypoint that the build emits', () => {
    const cmd = JSON.parse(of(runtime as Stage, 'CMD').at(-1)?.args ?? '[]') as string[];
    const script = cmd.find((a) => a.startsWith('dist/')) as string;
    expect(script).toMatch(/^dist\/workers\/[\w-]+\.js$/);
    const source = path.join(repoRoot, script.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
    expect(() => readFileSync(source)).not.toThrow();
  });
});

describe('the jobs image (jobs/Dockerfile)', () => {
  it('runs as the uid the GPU Job templates set (k8s/base/job-templates)', () => {
    const templates = ['download', 'quantize', 'evaluate'].flatMap((name) =>
      readYamlDocuments(path.join(K8S_DIR, 'base', 'job-templates', `${name}.yaml`)),
    ) as Manifest[];
    const users = runAsUsersOf(templates, 'ghcr.io/qwenops/jobs');
    expect(users).toHaveLength(3);
    expect(new Set(users)).toEqual(new Set([finalUser(finalStage(parseDockerfile(JOBS))).uid]));
  });
});

describe('the serving image (serving/Dockerfile)', () => {
  it('wraps the vLLM image the InferenceServices default to, as uid 1001', () => {
    const dockerfile = parseDockerfile(SERVING);
    expect(finalStage(dockerfile).image).toMatch(/^vllm\/vllm-openai:v0\.11\.0@sha256:/);
    expect(finalUser(finalStage(dockerfile))).toMatchObject({ uid: 1001, gid: 1001 });
  });
});
