import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TASK_QUEUES } from '../../../workflows/definitions.js';
import {
  checkWorkerQueues,
  containerEntrypoint,
  K8S_DIR,
  kustomizationObjects,
  type Manifest,
  queuesUsedByWorkflows,
  workerEntrypointQueues,
} from '../../support/k8s-manifests.js';

// Every Temporal task queue the code uses must have a worker in k8s/: a Deployment whose
// container runs the entrypoint registering that queue, an HPA scaling it and a PDB keeping
// one through drains. The queues come from the code (TASK_QUEUES, the workflows'
// `TASK_QUEUES.<key>` uses, the `runWorkers({ queues })` calls of workers/*.ts); the
// manifests are what k8s/base/kustomization.yaml lists, parsed with `yaml` (the k8s tier
// runs the same check on the overlays kustomize renders).

const base = () => kustomizationObjects(path.join(K8S_DIR, 'base'));

describe('k8s/ workers and the task queues', () => {
  it('derives the queues from the code: the workflows use only TASK_QUEUES, each has a production entrypoint', () => {
    const keys = Object.keys(TASK_QUEUES);
    const used = queuesUsedByWorkflows();
    expect(used.size).toBeGreaterThan(0);
    for (const key of used) expect(keys).toContain(key);

    const entrypoints = workerEntrypointQueues();
    expect(entrypoints.get('workers/all-in-one')?.slice().sort()).toEqual(keys.slice().sort());
    // Production: one entrypoint per queue, each registering exactly that queue.
    const production = [...entrypoints].filter(([file]) => file !== 'workers/all-in-one');
    expect(production.map(([, queues]) => queues.length)).toEqual(production.map(() => 1));
    expect(production.flatMap(([, queues]) => queues).sort()).toEqual(keys.slice().sort());
  });

  it('k8s/base has, per task queue, a Deployment whose worker polls it, with an HPA and a PDB', () => {
    const { coverage, problems } = checkWorkerQueues(base());
    expect(problems).toEqual([]);
    expect(coverage.map((c) => c.queue).sort()).toEqual(Object.values(TASK_QUEUES).sort());
    expect(coverage.find((c) => c.queue === TASK_QUEUES.knowledge)).toEqual({
      queue: 'qwenops.knowledge',
      deployment: 'qwenops-worker-knowledge',
      hpa: 'qwenops-worker-knowledge',
      pdb: 'qwenops-worker-knowledge',
    });
    for (const c of coverage) expect(c.deployment && c.hpa && c.pdb).toBeTruthy();
  });

  it('reads which queue a container polls from the entrypoint it runs', () => {
    expect(
      containerEntrypoint({ command: ['node', '--enable-source-maps', 'dist/workers/knowledge.js'] }),
    ).toBe('workers/knowledge');
    expect(containerEntrypoint({ command: ['node'], args: ['dist/workers/gpu-jobs.js'] })).toBe(
      'workers/gpu-jobs',
    );
    expect(containerEntrypoint({ command: ['node', 'dist/src/cli/main.js'] })).toBeUndefined();
  });

  it('is not vacuous: a missing worker, HPA or PDB, or a worker polling the wrong queue, is reported', () => {
    const objects = base();
    const without = (kind: string, name: string) =>
      objects.filter((o) => !(o.kind === kind && o.metadata?.name === name));
    expect(checkWorkerQueues(without('Deployment', 'qwenops-worker-knowledge')).problems).toEqual([
      'task queue qwenops.knowledge: no Deployment runs a worker that polls it',
    ]);
    expect(
      checkWorkerQueues(without('HorizontalPodAutoscaler', 'qwenops-worker-knowledge')).problems,
    ).toEqual([
      'task queue qwenops.knowledge: no HorizontalPodAutoscaler targets Deployment qwenops-worker-knowledge',
    ]);
    expect(checkWorkerQueues(without('PodDisruptionBudget', 'qwenops-worker-knowledge')).problems).toEqual([
      'task queue qwenops.knowledge: no PodDisruptionBudget selects the pods of qwenops-worker-knowledge',
    ]);
    // The knowledge Deployment running the cluster entrypoint: its label says otherwise, and
    // the knowledge queue is left without a worker.
    const swapped = structuredClone(objects) as Manifest[];
    const knowledge = swapped.find(
      (o) => o.metadata?.name === 'qwenops-worker-knowledge' && o.kind === 'Deployment',
    );
    knowledge?.spec.template.spec.containers[0].command.splice(-1, 1, 'dist/workers/cluster.js');
    expect(checkWorkerQueues(swapped).problems).toEqual([
      'Deployment qwenops-worker-knowledge: labelled qwenops.io/task-queue=qwenops.knowledge but polls qwenops.cluster',
      'task queue qwenops.cluster: polled by several Deployments (qwenops-worker-cluster,qwenops-worker-knowledge)',
      'task queue qwenops.knowledge: no Deployment runs a worker that polls it',
    ]);
  });
});
