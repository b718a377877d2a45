import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { TASK_QUEUES } from '../../workflows/definitions.js';

// What k8s/ must deploy, derived from the code: the task queues (TASK_QUEUES), which queues
// each worker entrypoint registers (scanned from workers/*.ts), which queues the workflows
// schedule activities on (scanned from workflows/*.ts); and the checks that tie manifests to
// them. Pure: the unit test runs them on k8s/base parsed with `yaml`, the k8s tier on the
// overlays kustomize rendered. Also the PodMonitor -> Prometheus scrape config translation
// the Prometheus Operator does, for the test that runs a real Prometheus on it.

export const K8S_DIR = path.join(repoRoot, 'k8s');
export const PODMONITOR_CRD_FILE = path.join(
  repoRoot,
  'test',
  'fixtures',
  'prometheus-operator',
  'monitoring.coreos.com_podmonitors.yaml',
);

export type QueueKey = keyof typeof TASK_QUEUES;
// biome-ignore lint/suspicious/noExplicitAny: manifests are read field by field
export type Manifest = { apiVersion?: string; kind?: string; metadata?: any; spec?: any; data?: any };

const QUEUE_KEYS = Object.keys(TASK_QUEUES) as QueueKey[];

function isQueueKey(key: string): key is QueueKey {
  return (QUEUE_KEYS as string[]).includes(key);
}

/**
 * The queues each worker entrypoint (workers/<name>.ts, as `workers/<name>`) registers:
 * the `runWorkers({ queues: [...] })` call it makes. Files that start no worker are left out.
 */
export function workerEntrypointQueues(dir = path.join(repoRoot, 'workers')): Map<string, QueueKey[]> {
  const result = new Map<string, QueueKey[]>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(path.join(dir, file), 'utf8');
    const call = /runWorkers\(\s*\{[^}]*?queues:\s*\[([^\]]*)\]/s.exec(source);
    if (!call) continue;
    const keys = [...(call[1] as string).matchAll(/['"]([^'"]+)['"]/g)].map((m) => m[1] as string);
    const unknown = keys.filter((k) => !isQueueKey(k));
    if (unknown.length > 0) throw new Error(`workers/${file} registers unknown queues ${unknown.join(', ')}`);
    result.set(`workers/${file.replace(/\.ts$/, '')}`, keys as QueueKey[]);
  }
  return result;
}

/** The TASK_QUEUES keys the workflow code schedules work on (`TASK_QUEUES.<key>`). */
export function queuesUsedByWorkflows(dir = path.join(repoRoot, 'workflows')): Set<string> {
  const used = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(path.join(dir, file), 'utf8');
    for (const m of source.matchAll(/TASK_QUEUES\.(\w+)/g)) used.add(m[1] as string);
  }
  return used;
}

/** Every object of a kustomization's `resources` (files and nested kustomizations), in order. */
export function kustomizationObjects(dir: string): Manifest[] {
  const kustomization = YAML.parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as {
    resources?: string[];
  };
  const objects: Manifest[] = [];
  for (const resource of kustomization.resources ?? []) {
    const full = path.join(dir, resource);
    if (statSync(full).isDirectory()) {
      objects.push(...kustomizationObjects(full));
      continue;
    }
    for (const doc of YAML.parseAllDocuments(readFileSync(full, 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${full}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as Manifest | null;
      if (value) objects.push(value);
    }
  }
  return objects;
}

/** The text a container runs: command and args, joined. */
function commandLine(container: { command?: string[]; args?: string[] }): string {
  return [...(container.command ?? []), ...(container.args ?? [])].join(' ');
}

/** The worker entrypoint a container runs (`dist/workers/x.js` or `workers/x.ts` -> `workers/x`). */
export function containerEntrypoint(container: { command?: string[]; args?: string[] }): string | undefined {
  const m = /(?:^|[\s/])workers\/([\w-]+)\.(?:js|ts)\b/.exec(commandLine(container));
  return m ? `workers/${m[1]}` : undefined;
}

function selects(matchLabels: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!matchLabels || Object.keys(matchLabels).length === 0) return false;
  return Object.entries(matchLabels).every(([k, v]) => labels[k] === v);
}

export interface QueueCoverage {
  queue: string;
  deployment?: string;
  hpa?: string;
  pdb?: string;
}

/**
 * For each task queue, the Deployment whose worker polls it (by the entrypoint its container
 * runs), the HPA scaling that Deployment and the PDB selecting its pods; `problems` lists
 * every queue without one of them and every inconsistency found on the way.
 */
export function checkWorkerQueues(
  objects: Manifest[],
  entrypoints: Map<string, QueueKey[]> = workerEntrypointQueues(),
): { coverage: QueueCoverage[]; problems: string[] } {
  const problems: string[] = [];
  const deployments = objects.filter((o) => o.kind === 'Deployment');
  const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
  const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget');
  const polledBy = new Map<string, Manifest[]>();
  for (const d of deployments) {
    const name = d.metadata?.name as string;
    const podLabels = (d.spec?.template?.metadata?.labels ?? {}) as Record<string, string>;
    if (!selects(d.spec?.selector?.matchLabels, podLabels)) {
      problems.push(`Deployment ${name}: its selector does not match its pod template labels`);
    }
    const queues = new Set<string>();
    for (const container of (d.spec?.template?.spec?.containers ?? []) as Array<{
      command?: string[];
      args?: string[];
    }>) {
      const entrypoint = containerEntrypoint(container);
      if (!entrypoint) continue;
      const registered = entrypoints.get(entrypoint);
      if (!registered) {
        problems.push(`Deployment ${name}: runs ${entrypoint}, which is no worker entrypoint (workers/*.ts)`);
        continue;
      }
      for (const key of registered) queues.add(TASK_QUEUES[key]);
    }
    const label = podLabels['qwenops.io/task-queue'];
    if (label !== undefined && !(queues.size === 1 && queues.has(label))) {
      problems.push(`Deployment ${name}: labelled qwenops.io/task-queue=${label} but polls ${[...queues]}`);
    }
    for (const queue of queues) polledBy.set(queue, [...(polledBy.get(queue) ?? []), d]);
  }

  const coverage: QueueCoverage[] = [];
  for (const queue of Object.values(TASK_QUEUES)) {
    const entry: QueueCoverage = { queue };
    coverage.push(entry);
    const candidates = polledBy.get(queue) ?? [];
    if (candidates.length === 0) {
      problems.push(`task queue ${queue}: no Deployment runs a worker that polls it`);
      continue;
    }
    if (candidates.length > 1) {
      problems.push(
        `task queue ${queue}: polled by several Deployments (${candidates.map((d) => d.metadata?.name)})`,
      );
    }
    const d = candidates[0] as Manifest;
    entry.deployment = d.metadata?.name;
    const namespace = d.metadata?.namespace;
    const hpa = hpas.find(
      (h) =>
        h.metadata?.namespace === namespace &&
        h.spec?.scaleTargetRef?.kind === 'Deployment' &&
        h.spec?.scaleTargetRef?.apiVersion === 'apps/v1' &&
        h.spec?.scaleTargetRef?.name === entry.deployment,
    );
    if (hpa) entry.hpa = hpa.metadata?.name;
    else
      problems.push(`task queue ${queue}: no HorizontalPodAutoscaler targets Deployment ${entry.deployment}`);
    if (hpa && !(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas >= hpa.spec.minReplicas)) {
      problems.push(`HorizontalPodAutoscaler ${hpa.metadata?.name}: bad min/max replicas`);
    }
    const podLabels = (d.spec?.template?.metadata?.labels ?? {}) as Record<string, string>;
    const pdb = pdbs.find(
      (p) => p.metadata?.namespace === namespace && selects(p.spec?.selector?.matchLabels, podLabels),
    );
    if (!pdb) {
      problems.push(`task queue ${queue}: no PodDisruptionBudget selects the pods of ${entry.deployment}`);
      continue;
    }
    entry.pdb = pdb.metadata?.name;
    // A PDB over several Deployments' pods would let a drain take one queue's last worker.
    const others = deployments.filter(
      (o) =>
        o !== d &&
        o.metadata?.namespace === namespace &&
        selects(pdb.spec?.selector?.matchLabels, o.spec?.template?.metadata?.labels ?? {}),
    );
    if (others.length > 0) {
      problems.push(`PodDisruptionBudget ${entry.pdb}: also selects ${others.map((o) => o.metadata?.name)}`);
    }
  }
  return { coverage, problems };
}

// --- PodMonitor -> Prometheus scrape configs (what the Prometheus Operator generates) -------

/** Kubernetes SD's label-name sanitising: `serving.knative.dev/revision` -> `serving_knative_dev_revision`. */
export function sanitizeLabelName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

const RELABEL_KEYS: Record<string, string> = {
  sourceLabels: 'source_labels',
  targetLabel: 'target_label',
  separator: 'separator',
  regex: 'regex',
  modulus: 'modulus',
  replacement: 'replacement',
  action: 'action',
};

/** A PodMonitor relabeling (camelCase, CRD) as a Prometheus relabel_config (snake_case). */
export function toRelabelConfig(relabeling: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(relabeling)) {
    const mapped = RELABEL_KEYS[key];
    if (!mapped) throw new Error(`relabeling field ${key} is not translated`);
    out[mapped] = key === 'action' ? String(value).toLowerCase() : value;
  }
  return out;
}

/**
 * One scrape config per podMetricsEndpoint, with the relabelings the Prometheus Operator puts
 * in front of the user's (selector and port filters, namespace/pod/container/endpoint/job
 * labels), then the PodMonitor's own. `sd` replaces the operator's kubernetes_sd_configs
 * (role pod), e.g. an http_sd_configs list serving the same __meta_kubernetes_pod_* labels.
 */
export function podMonitorScrapeConfigs(
  podMonitor: Manifest,
  sd: Record<string, unknown>,
  options: { scrapeInterval?: string } = {},
): Record<string, unknown>[] {
  const namespace = podMonitor.metadata?.namespace as string;
  const name = podMonitor.metadata?.name as string;
  const selector = (podMonitor.spec?.selector ?? {}) as {
    matchLabels?: Record<string, string>;
    matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
  };
  const selectorRelabels: Record<string, unknown>[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    const k = sanitizeLabelName(key);
    selectorRelabels.push({
      action: 'keep',
      source_labels: [`__meta_kubernetes_pod_label_${k}`, `__meta_kubernetes_pod_labelpresent_${k}`],
      regex: `(${value});true`,
    });
  }
  for (const expression of selector.matchExpressions ?? []) {
    const k = sanitizeLabelName(expression.key);
    const values = `(${(expression.values ?? []).join('|')})`;
    const present = `__meta_kubernetes_pod_labelpresent_${k}`;
    const label = `__meta_kubernetes_pod_label_${k}`;
    switch (expression.operator) {
      case 'Exists':
        selectorRelabels.push({ action: 'keep', source_labels: [present], regex: 'true' });
        break;
      case 'DoesNotExist':
        selectorRelabels.push({ action: 'drop', source_labels: [present], regex: 'true' });
        break;
      case 'In':
        selectorRelabels.push({ action: 'keep', source_labels: [label, present], regex: `${values};true` });
        break;
      case 'NotIn':
        selectorRelabels.push({ action: 'drop', source_labels: [label, present], regex: `${values};true` });
        break;
      default:
        throw new Error(`selector operator ${expression.operator} is not translated`);
    }
  }
  return ((podMonitor.spec?.podMetricsEndpoints ?? []) as Array<Record<string, unknown>>).map(
    (endpoint, i) => {
      const port = endpoint.port as string | undefined;
      if (!port) throw new Error('only podMetricsEndpoints with a port name are translated');
      return {
        job_name: `podMonitor/${namespace}/${name}/${i}`,
        honor_labels: false,
        scrape_interval: options.scrapeInterval ?? endpoint.interval ?? '30s',
        scrape_timeout: options.scrapeInterval ?? '10s',
        metrics_path: endpoint.path ?? '/metrics',
        ...sd,
        relabel_configs: [
          { source_labels: ['job'], target_label: '__tmp_prometheus_job_name' },
          { action: 'drop', source_labels: ['__meta_kubernetes_pod_phase'], regex: '(Failed|Succeeded)' },
          ...selectorRelabels,
          { action: 'keep', source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: port },
          { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
          { source_labels: ['__meta_kubernetes_pod_container_name'], target_label: 'container' },
          { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
          { target_label: 'job', replacement: `${namespace}/${name}` },
          { target_label: 'endpoint', replacement: port },
          ...((endpoint.relabelings ?? []) as Array<Record<string, unknown>>).map(toRelabelConfig),
        ],
      };
    },
  );
}
